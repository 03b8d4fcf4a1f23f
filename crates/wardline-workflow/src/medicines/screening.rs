//! (issue 17: placeholder; the owner writes this module.)
