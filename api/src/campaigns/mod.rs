//! Campaigns: broadcasts to an audience (now or scheduled), sent by a rate-limited
//! dispatcher over a durable queue, tracked per recipient; and API campaigns that CRMs
//! trigger one contact at a time.

pub mod api;
pub mod api_graphql;
pub mod batch;
pub mod dispatcher;
pub mod export;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod links;
pub mod model;
pub mod progress;
pub mod service;
pub mod tracking;
