//! Database entities shared by the API, the analytics shipper and the migrations.

pub mod analytics_outbox;
pub mod api_key;
pub mod member;
pub mod project;
pub mod user;

pub mod prelude {
    pub use super::analytics_outbox::Entity as AnalyticsOutbox;
    pub use super::api_key::Entity as ApiKey;
    pub use super::member::Entity as Member;
    pub use super::project::Entity as Project;
    pub use super::user::Entity as User;
}
