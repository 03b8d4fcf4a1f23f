//! (issue 17: placeholder; the chemotherapy owner writes this module.)
