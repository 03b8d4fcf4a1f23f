//! (issue 17: placeholder; the owner writes these pages.)
