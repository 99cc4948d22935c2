//! Campaigns: broadcasts to an audience (now or scheduled), sent by a rate-limited
//! dispatcher over a durable queue, tracked per recipient; and API campaigns that CRMs
//! trigger one contact at a time.

pub mod dispatcher;
pub mod export;
pub mod graphql;
pub mod limits;
pub mod model;
pub mod progress;
pub mod service;
pub mod tracking;
