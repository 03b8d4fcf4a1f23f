//! The pathology laboratory's workflow (issue 16: being built).
