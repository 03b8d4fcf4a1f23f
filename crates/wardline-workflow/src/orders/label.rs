//! (issue 16: being built)
