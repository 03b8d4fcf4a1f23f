//! Social care (issue 18): the Care Act assessment and discharge notices to
//! the local authority, sent over the transfers routes and tracked against
//! their statutory timescales.
