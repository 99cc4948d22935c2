//! Message templates: the component model, Meta's rules, submission and review status,
//! and rendering a template's parameters for one contact.

pub mod graphql;
pub mod meta_shape;
pub mod model;
pub mod render;
pub mod service;
pub mod validate;
