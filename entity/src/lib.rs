//! Database entities shared by the API, the analytics shipper and the migrations.

pub mod analytics_outbox;
pub mod api_key;
pub mod assistant_settings;
pub mod attribute;
pub mod chat;
pub mod chat_event;
pub mod contact;
pub mod contact_attribute;
pub mod contact_event;
pub mod contact_messaging;
pub mod contact_tag;
pub mod import_file_chunk;
pub mod import_issue;
pub mod import_job;
pub mod member;
pub mod message;
pub mod message_status;
pub mod project;
pub mod segment;
pub mod tag;
pub mod template;
pub mod user;
pub mod webhook_event;
pub mod whatsapp_account;

pub mod prelude {
    pub use super::analytics_outbox::Entity as AnalyticsOutbox;
    pub use super::api_key::Entity as ApiKey;
    pub use super::assistant_settings::Entity as AssistantSettings;
    pub use super::attribute::Entity as Attribute;
    pub use super::chat::Entity as Chat;
    pub use super::chat_event::Entity as ChatEvent;
    pub use super::contact::Entity as Contact;
    pub use super::contact_attribute::Entity as ContactAttribute;
    pub use super::contact_event::Entity as ContactEvent;
    pub use super::contact_messaging::Entity as ContactMessaging;
    pub use super::contact_tag::Entity as ContactTag;
    pub use super::import_file_chunk::Entity as ImportFileChunk;
    pub use super::import_issue::Entity as ImportIssue;
    pub use super::import_job::Entity as ImportJob;
    pub use super::member::Entity as Member;
    pub use super::message::Entity as Message;
    pub use super::message_status::Entity as MessageStatus;
    pub use super::project::Entity as Project;
    pub use super::segment::Entity as Segment;
    pub use super::tag::Entity as Tag;
    pub use super::template::Entity as Template;
    pub use super::user::Entity as User;
    pub use super::webhook_event::Entity as WebhookEvent;
    pub use super::whatsapp_account::Entity as WhatsappAccount;
}
