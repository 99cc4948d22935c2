use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, SimpleObject, connection::Connection,
};
use chrono::{DateTime, Utc};
use parley_entity::template;

use super::{
    model::{
        Body, Button, Category, Components, Header, HeaderFormat, NamedExample, ParameterFormat,
        TemplateDraft,
    },
    service,
};
use crate::{
    auth::{
        RoleGuard,
        guard::{MEMBERS, OWNER_MANAGER},
    },
    errors::{AppError, AppResult},
    graphql::{app_state, relay, scope},
    projects::graphql::parse_id,
};

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "Category")]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "ParameterFormat")]
pub enum TemplateParameterFormat {
    /// `{{1}}`, `{{2}}`...
    Positional,
    /// `{{first_name}}`...
    Named,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "HeaderFormat")]
pub enum TemplateHeaderFormat {
    Text,
    Image,
    Video,
    Document,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum TemplateButtonType {
    QuickReply,
    Url,
    PhoneNumber,
    CopyCode,
}

#[derive(InputObject)]
pub struct TemplateHeaderInput {
    pub format: TemplateHeaderFormat,
    /// The text of a TEXT header: at most 60 characters and one parameter.
    pub text: Option<String>,
    /// The example of the header's parameter, or a sample media URL.
    pub example: Option<String>,
}

#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "NamedExampleInput")]
pub struct TemplateNamedExample {
    pub name: String,
    pub example: String,
}

#[derive(InputObject)]
pub struct TemplateButtonInput {
    #[graphql(name = "type")]
    pub kind: TemplateButtonType,
    /// The label (all but COPY_CODE).
    pub text: Option<String>,
    /// URL buttons: the link, optionally ending in `{{1}}`.
    pub url: Option<String>,
    /// URL buttons with a suffix: a full sample URL; COPY_CODE: a sample code.
    pub example: Option<String>,
    /// PHONE_NUMBER buttons, in E.164.
    pub phone_number: Option<String>,
}

#[derive(InputObject)]
pub struct TemplateInput {
    /// Lowercase letters, digits and underscores.
    pub name: String,
    /// Meta's language code: `en`, `en_US`, `pt_BR`...
    pub language: String,
    pub category: TemplateCategory,
    #[graphql(default_with = "TemplateParameterFormat::Positional")]
    pub parameter_format: TemplateParameterFormat,
    pub header: Option<TemplateHeaderInput>,
    /// Up to 1,024 characters with parameters `{{1}}`, `{{2}}`... (or `{{name}}`).
    pub body: String,
    /// Examples of `{{1}}`, `{{2}}`... in order.
    #[graphql(default)]
    pub body_examples: Vec<String>,
    /// Examples of named parameters.
    #[graphql(default)]
    pub body_named_examples: Vec<TemplateNamedExample>,
    pub footer: Option<String>,
    #[graphql(default)]
    pub buttons: Vec<TemplateButtonInput>,
}

impl TemplateInput {
    fn into_draft(self) -> AppResult<TemplateDraft> {
        let buttons = self
            .buttons
            .into_iter()
            .enumerate()
            .map(|(i, b)| button(i, b))
            .collect::<AppResult<Vec<_>>>()?;
        Ok(TemplateDraft {
            name: self.name.trim().to_owned(),
            language: self.language.trim().to_owned(),
            category: self.category.into(),
            parameter_format: self.parameter_format.into(),
            components: Components {
                header: self.header.map(|h| Header {
                    format: h.format.into(),
                    text: h.text,
                    example: h.example,
                }),
                body: Body {
                    text: self.body,
                    examples: self.body_examples,
                    named_examples: self
                        .body_named_examples
                        .into_iter()
                        .map(|n| NamedExample {
                            name: n.name,
                            example: n.example,
                        })
                        .collect(),
                },
                footer: self.footer.filter(|f| !f.trim().is_empty()),
                buttons,
            },
        })
    }
}

fn button(index: usize, input: TemplateButtonInput) -> AppResult<Button> {
    let required = |value: Option<String>, what: &str| -> AppResult<String> {
        value.ok_or_else(|| {
            AppError::bad_input("buttons", format!("button {} needs its {what}", index + 1))
        })
    };
    Ok(match input.kind {
        TemplateButtonType::QuickReply => Button::QuickReply {
            text: required(input.text, "text")?,
        },
        TemplateButtonType::Url => Button::Url {
            text: required(input.text, "text")?,
            url: required(input.url, "url")?,
            example: input.example,
        },
        TemplateButtonType::PhoneNumber => Button::PhoneNumber {
            text: required(input.text, "text")?,
            phone_number: required(input.phone_number, "phoneNumber")?,
        },
        TemplateButtonType::CopyCode => Button::CopyCode {
            example: required(input.example, "example")?,
        },
    })
}

#[derive(SimpleObject)]
pub struct TemplateHeader {
    pub format: TemplateHeaderFormat,
    pub text: Option<String>,
    pub example: Option<String>,
}

#[derive(SimpleObject)]
pub struct TemplateButton {
    #[graphql(name = "type")]
    pub kind: TemplateButtonType,
    pub text: Option<String>,
    pub url: Option<String>,
    pub example: Option<String>,
    pub phone_number: Option<String>,
}

/// One way the template breaks WhatsApp's rules.
#[derive(SimpleObject)]
pub struct TemplateProblem {
    /// The input at fault, e.g. `components.body.text` or `components.buttons[2].url`.
    pub path: String,
    /// A stable code, e.g. `BODY_TOO_LONG`.
    pub code: String,
    pub message: String,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum TemplateStatus {
    Draft,
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
    InAppeal,
    PendingDeletion,
    Deleted,
    LimitExceeded,
    Archived,
}

fn status(raw: &str) -> TemplateStatus {
    match raw {
        "DRAFT" => TemplateStatus::Draft,
        "APPROVED" => TemplateStatus::Approved,
        "REJECTED" => TemplateStatus::Rejected,
        "PAUSED" => TemplateStatus::Paused,
        "DISABLED" => TemplateStatus::Disabled,
        "IN_APPEAL" => TemplateStatus::InAppeal,
        "PENDING_DELETION" => TemplateStatus::PendingDeletion,
        "DELETED" => TemplateStatus::Deleted,
        "LIMIT_EXCEEDED" => TemplateStatus::LimitExceeded,
        "ARCHIVED" => TemplateStatus::Archived,
        _ => TemplateStatus::Pending,
    }
}

fn status_name(s: TemplateStatus) -> &'static str {
    match s {
        TemplateStatus::Draft => "DRAFT",
        TemplateStatus::Pending => "PENDING",
        TemplateStatus::Approved => "APPROVED",
        TemplateStatus::Rejected => "REJECTED",
        TemplateStatus::Paused => "PAUSED",
        TemplateStatus::Disabled => "DISABLED",
        TemplateStatus::InAppeal => "IN_APPEAL",
        TemplateStatus::PendingDeletion => "PENDING_DELETION",
        TemplateStatus::Deleted => "DELETED",
        TemplateStatus::LimitExceeded => "LIMIT_EXCEEDED",
        TemplateStatus::Archived => "ARCHIVED",
    }
}

fn category(raw: &str) -> TemplateCategory {
    match raw {
        "UTILITY" => TemplateCategory::Utility,
        "AUTHENTICATION" => TemplateCategory::Authentication,
        _ => TemplateCategory::Marketing,
    }
}

pub struct Template(pub template::Model);

#[Object]
impl Template {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    /// The category in force (Meta may change it).
    async fn category(&self) -> TemplateCategory {
        category(&self.0.category)
    }
    /// The category before Meta changed it.
    async fn previous_category(&self) -> Option<TemplateCategory> {
        self.0.previous_category.as_deref().map(category)
    }
    async fn parameter_format(&self) -> TemplateParameterFormat {
        if self.0.parameter_format == "NAMED" {
            TemplateParameterFormat::Named
        } else {
            TemplateParameterFormat::Positional
        }
    }
    async fn status(&self) -> TemplateStatus {
        status(&self.0.status)
    }
    /// Why Meta rejected it (`INVALID_FORMAT`, `TAG_CONTENT_MISMATCH`...).
    async fn rejection_reason(&self) -> Option<&str> {
        self.0.rejection_reason.as_deref()
    }
    async fn meta_template_id(&self) -> Option<&str> {
        self.0.meta_template_id.as_deref()
    }
    async fn header(&self) -> Result<Option<TemplateHeader>> {
        let components = service::components_of(&self.0)?;
        Ok(components.header.map(|h| TemplateHeader {
            format: h.format.into(),
            text: h.text,
            example: h.example,
        }))
    }
    async fn body(&self) -> Result<String> {
        Ok(service::components_of(&self.0)?.body.text)
    }
    async fn body_examples(&self) -> Result<Vec<String>> {
        Ok(service::components_of(&self.0)?.body.examples)
    }
    async fn body_named_examples(&self) -> Result<Vec<TemplateNamedExample>> {
        Ok(service::components_of(&self.0)?
            .body
            .named_examples
            .into_iter()
            .map(|n| TemplateNamedExample {
                name: n.name,
                example: n.example,
            })
            .collect())
    }
    async fn footer(&self) -> Result<Option<String>> {
        Ok(service::components_of(&self.0)?.footer)
    }
    async fn buttons(&self) -> Result<Vec<TemplateButton>> {
        Ok(service::components_of(&self.0)?
            .buttons
            .into_iter()
            .map(|b| match b {
                Button::QuickReply { text } => TemplateButton {
                    kind: TemplateButtonType::QuickReply,
                    text: Some(text),
                    url: None,
                    example: None,
                    phone_number: None,
                },
                Button::Url { text, url, example } => TemplateButton {
                    kind: TemplateButtonType::Url,
                    text: Some(text),
                    url: Some(url),
                    example,
                    phone_number: None,
                },
                Button::PhoneNumber { text, phone_number } => TemplateButton {
                    kind: TemplateButtonType::PhoneNumber,
                    text: Some(text),
                    url: None,
                    example: None,
                    phone_number: Some(phone_number),
                },
                Button::CopyCode { example } => TemplateButton {
                    kind: TemplateButtonType::CopyCode,
                    text: None,
                    url: None,
                    example: Some(example),
                    phone_number: None,
                },
            })
            .collect())
    }
    /// What stands between this template and its submission, by WhatsApp's rules.
    async fn problems(&self) -> Vec<TemplateProblem> {
        service::problems(&self.0)
            .into_iter()
            .map(|p| TemplateProblem {
                path: p.path,
                code: p.code,
                message: p.message,
            })
            .collect()
    }
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.0.submitted_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject)]
pub struct TemplateSyncResult {
    /// Pages of Meta's list read.
    pub pages: i32,
    pub updated: i32,
    /// Templates made outside Parley (in WhatsApp Manager), now known here.
    pub imported: i32,
    pub unchanged: i32,
}

#[derive(Default)]
pub struct TemplatesQuery;

#[Object]
impl TemplatesQuery {
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn template(&self, ctx: &Context<'_>, id: ID) -> Result<Template> {
        let id = parse_id("id", &id)?;
        Ok(Template(
            service::find(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// The project's templates, oldest first; only those in `status` when given.
    #[graphql(guard = "RoleGuard::read(crate::auth::guard::ANYONE)")]
    async fn templates(
        &self,
        ctx: &Context<'_>,
        status: Option<TemplateStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Template>> {
        let page = relay::page_request(first, after, last, before)?;
        let page =
            service::list(app_state(ctx), scope(ctx)?, status.map(status_name), page).await?;
        Ok(relay::connection(page, |t| t.id, Template))
    }
}

#[derive(Default)]
pub struct TemplatesMutation;

#[Object]
impl TemplatesMutation {
    /// Saves a draft; it is checked against WhatsApp's rules on submission (its
    /// `problems` say what is left).
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn create_template(&self, ctx: &Context<'_>, input: TemplateInput) -> Result<Template> {
        let draft = input.into_draft()?;
        Ok(Template(
            service::create(app_state(ctx), scope(ctx)?, draft).await?,
        ))
    }

    /// Edits a draft or a rejected template.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn update_template(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: TemplateInput,
    ) -> Result<Template> {
        let id = parse_id("id", &id)?;
        let draft = input.into_draft()?;
        Ok(Template(
            service::update(app_state(ctx), scope(ctx)?, id, draft).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn delete_template(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let uuid = parse_id("id", &id)?;
        service::delete(app_state(ctx), scope(ctx)?, uuid).await?;
        Ok(id)
    }

    /// Checks the template by WhatsApp's rules (all problems at once, in
    /// `extensions.problems`) and submits it to Meta for review.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn submit_template(&self, ctx: &Context<'_>, id: ID) -> Result<Template> {
        let id = parse_id("id", &id)?;
        Ok(Template(
            service::submit(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// Reads every template's status and category from Meta now.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn sync_templates(&self, ctx: &Context<'_>) -> Result<TemplateSyncResult> {
        let report = service::sync(app_state(ctx), scope(ctx)?).await?;
        let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        Ok(TemplateSyncResult {
            pages: n(report.pages),
            updated: n(report.updated),
            imported: n(report.imported),
            unchanged: n(report.unchanged),
        })
    }
}
