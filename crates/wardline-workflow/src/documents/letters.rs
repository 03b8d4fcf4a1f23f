//! Clinic letters (issue 18): the letter after an outpatient attendance, to
//! the GP practice and the patient, delivered over the transfers routes.
