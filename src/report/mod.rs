//! The read path: what the API and the dashboard answer from the shards'
//! rows and the alert object's series and records: `series` (counts over
//! time), `uniques` (unique visitors), `referral_report` (the referral
//! tables), `overview` (Mission Control) and `alerts` (the alert object's
//! rules, history, silences and receivers); `query` reads their query
//! strings and says why one is refused; `sites` which site a request
//! speaks of.

pub mod alerts;
pub mod overview;
pub mod query;
pub mod referral_report;
pub mod series;
pub mod sites;
pub mod uniques;
