//! Contacts, tags and attributes: identity, segments, the customer journey, CSV import and
//! export.

pub mod attributes;
pub mod export;
pub mod filter;
pub mod graphql;
pub mod import;
pub mod journey;
pub mod listing;
pub mod loaders;
pub mod messaging;
pub mod phone;
pub mod segments;
pub mod service;
pub mod tags;
