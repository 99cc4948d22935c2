//! The template component model, as Parley stores it (Meta's shapes are in `meta_shape`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`...
    Positional,
    /// `{{first_name}}`...
    Named,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderFormat {
    Text,
    Image,
    Video,
    Document,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: HeaderFormat,
    /// The text of a `TEXT` header (at most one parameter).
    pub text: Option<String>,
    /// The example of the text header's parameter, or a sample media URL for a media
    /// header.
    pub example: Option<String>,
}

/// An example value of a named parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedExample {
    pub name: String,
    pub example: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    pub text: String,
    /// Examples of `{{1}}`, `{{2}}`... in order (positional templates).
    #[serde(default)]
    pub examples: Vec<String>,
    /// Examples of each named parameter (named templates).
    #[serde(default)]
    pub named_examples: Vec<NamedExample>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum Button {
    QuickReply {
        text: String,
    },
    /// A link; `url` may end in `{{1}}`, a suffix given at send time (then `example`
    /// is a full sample URL).
    Url {
        text: String,
        url: String,
        example: Option<String>,
    },
    PhoneNumber {
        text: String,
        phone_number: String,
    },
    /// Copies a code (coupon); `example` is a sample code.
    CopyCode {
        example: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    pub header: Option<Header>,
    pub body: Body,
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<Button>,
}

/// Everything a template is made of, as created or edited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDraft {
    pub name: String,
    pub language: String,
    pub category: Category,
    pub parameter_format: ParameterFormat,
    pub components: Components,
}
