//! The built-in assistant of active chats: a greeting for a new conversation, keyword
//! replies, and hand-over to a person on the project's keywords. Silent while an agent
//! has the chat. (The point is the state machine, not a chatbot.)

use chrono::{DateTime, Utc};
use parley_entity::{assistant_settings, contact};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::service::{ASSISTANT, is_live};
use crate::{
    auth::{Role, Scope},
    errors::{AppError, AppResult},
    messages::send::{self, SendContent, SendRequest},
    state::AppState,
    validate,
};

/// Words that hand a chat to a person when a project has not chosen its own.
pub const DEFAULT_HANDOVER: &[&str] = &["agent", "human"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordReply {
    pub keyword: String,
    pub reply: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub greeting: Option<String>,
    pub handover_keywords: Vec<String>,
    pub handover_reply: Option<String>,
    pub replies: Vec<KeywordReply>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            greeting: None,
            handover_keywords: DEFAULT_HANDOVER.iter().map(|k| (*k).to_owned()).collect(),
            handover_reply: None,
            replies: Vec::new(),
        }
    }
}

impl From<assistant_settings::Model> for Settings {
    fn from(m: assistant_settings::Model) -> Self {
        Self {
            enabled: m.enabled,
            greeting: m.greeting,
            handover_keywords: m
                .handover_keywords
                .lines()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            handover_reply: m.handover_reply,
            replies: serde_json::from_str(&m.replies).unwrap_or_default(),
        }
    }
}

pub async fn settings<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> AppResult<Settings> {
    Ok(assistant_settings::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .map(Into::into)
        .unwrap_or_default())
}

pub async fn save(state: &AppState, scope: &Scope, wanted: Settings) -> AppResult<Settings> {
    let clean = |field: &'static str, text: Option<String>| -> AppResult<Option<String>> {
        text.filter(|t| !t.trim().is_empty())
            .map(|t| validate::text(field, &t, 4096))
            .transpose()
    };
    let keywords: Vec<String> = wanted
        .handover_keywords
        .iter()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    let mut replies = Vec::with_capacity(wanted.replies.len());
    for r in wanted.replies {
        let keyword = r.keyword.trim().to_lowercase();
        if keyword.is_empty() {
            return Err(AppError::bad_input(
                "replies",
                "a keyword reply needs its keyword",
            ));
        }
        replies.push(KeywordReply {
            keyword,
            reply: validate::text("replies", &r.reply, 4096)?,
        });
    }
    let row = assistant_settings::ActiveModel {
        project_id: Set(scope.project_id),
        enabled: Set(wanted.enabled),
        greeting: Set(clean("greeting", wanted.greeting)?),
        handover_keywords: Set(keywords.join("\n")),
        handover_reply: Set(clean("handoverReply", wanted.handover_reply)?),
        replies: Set(serde_json::to_string(&replies).map_err(AppError::internal)?),
        updated_at: Set(Utc::now()),
    };
    let exists = assistant_settings::Entity::find_by_id(scope.project_id)
        .one(&state.db)
        .await?
        .is_some();
    let saved = if exists {
        row.update(&state.db).await?
    } else {
        row.insert(&state.db).await?
    };
    Ok(saved.into())
}

/// Whether `text` contains `keyword` as whole words.
fn mentions(text: &str, keyword: &str) -> bool {
    let text = text.to_lowercase();
    text.match_indices(keyword).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + keyword.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// What the assistant does about an inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    HandOver { reply: Option<String> },
    Reply(String),
}

/// Decides, from the settings, the chat's state and the message.
pub fn decide(
    settings: &Settings,
    state: &str,
    text: Option<&str>,
    new_conversation: bool,
) -> Action {
    if !settings.enabled || state != ASSISTANT {
        return Action::Nothing;
    }
    if let Some(text) = text {
        if settings.handover_keywords.iter().any(|k| mentions(text, k)) {
            return Action::HandOver {
                reply: settings.handover_reply.clone(),
            };
        }
        if let Some(r) = settings.replies.iter().find(|r| mentions(text, &r.keyword)) {
            return Action::Reply(r.reply.clone());
        }
    }
    match (&settings.greeting, new_conversation) {
        (Some(greeting), true) => Action::Reply(greeting.clone()),
        _ => Action::Nothing,
    }
}

/// Acts on a new inbound message, after it is stored: hands over (in the caller's
/// transaction) and returns the events to record and what to send once it has committed.
pub async fn on_inbound<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    text: Option<&str>,
    written: DateTime<Utc>,
    new_conversation: bool,
    now: DateTime<Utc>,
) -> AppResult<(Vec<super::events::NewEvent>, Option<String>)> {
    if !is_live(Some(written), now) {
        return Ok((Vec::new(), None));
    }
    let settings = settings(conn, contact.project_id).await?;
    match decide(&settings, &contact.state, text, new_conversation) {
        Action::Nothing => Ok((Vec::new(), None)),
        Action::Reply(reply) => Ok((Vec::new(), Some(reply))),
        Action::HandOver { reply } => {
            let events = super::service::request_agent(conn, contact, now, "keyword").await?;
            Ok((events, reply))
        }
    }
}

/// Sends the assistant's reply (outside the webhook's transaction).
pub async fn reply(state: &AppState, project_id: Uuid, contact_id: Uuid, text: String) {
    let scope = Scope {
        project_id,
        role: Role::Owner,
        archived: false,
        user_id: None,
        api_key_id: None,
    };
    let request = SendRequest {
        contact_id,
        content: SendContent::Text(text),
        reply_to: None,
    };
    if let Err(err) = send::send(state, &scope, request).await {
        tracing::warn!(error = %err, %contact_id, "the assistant could not reply");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            greeting: Some("Welcome!".into()),
            replies: vec![KeywordReply {
                keyword: "price".into(),
                reply: "Prices start at 10.".into(),
            }],
            handover_reply: Some("An agent will answer soon.".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn hand_over_wins_over_replies_and_greetings() {
        assert_eq!(
            decide(
                &settings(),
                ASSISTANT,
                Some("Talk to an agent about the price"),
                true
            ),
            Action::HandOver {
                reply: Some("An agent will answer soon.".into())
            }
        );
        assert_eq!(
            decide(&settings(), ASSISTANT, Some("What is the price?"), true),
            Action::Reply("Prices start at 10.".into())
        );
        assert_eq!(
            decide(&settings(), ASSISTANT, Some("Hello"), true),
            Action::Reply("Welcome!".into())
        );
        assert_eq!(
            decide(&settings(), ASSISTANT, Some("Hello"), false),
            Action::Nothing
        );
    }

    #[test]
    fn silent_unless_the_assistant_has_the_chat() {
        for state in ["INTERVENED", "REQUESTING", "CLOSED"] {
            assert_eq!(
                decide(&settings(), state, Some("agent"), true),
                Action::Nothing
            );
        }
        let off = Settings {
            enabled: false,
            ..settings()
        };
        assert_eq!(
            decide(&off, ASSISTANT, Some("agent"), true),
            Action::Nothing
        );
    }

    #[test]
    fn keywords_match_whole_words() {
        assert!(mentions("I want a HUMAN please", "human"));
        assert!(!mentions("humane treatment", "human"));
        assert!(!mentions("reagents", "agent"));
        assert!(mentions("agent!", "agent"));
    }
}
