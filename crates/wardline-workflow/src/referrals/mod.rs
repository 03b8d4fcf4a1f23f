//! e-Referrals out (issue 18): a referral to another provider as a
//! BaRS-shaped `ServiceRequest` with its attachments, sent and tracked to
//! acceptance.
