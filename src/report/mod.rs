//! The read path: what the API and the dashboard answer from the shards'
//! rows and the alert object's series: `series` (counts over time),
//! `uniques` (unique visitors), `referral_report` (the referral tables) and
//! `overview` (Mission Control).

pub mod overview;
pub mod referral_report;
pub mod series;
pub mod uniques;
