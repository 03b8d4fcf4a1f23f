//! Admission, transfer and discharge; the bed board.
