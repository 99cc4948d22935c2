//! The application checklist: what a project has told Parley about its business, and
//! what that means for a WhatsApp Business API application (what is missing, and why it
//! matters). The answers also carry the green tick evidence (business or individual,
//! news articles).

use chrono::Utc;
use parley_entity::onboarding_profile;
use reqwest::Url;
use sea_orm::{ConnectionTrait, EntityTrait, sea_query::OnConflict};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rules::RestrictedIndustries;
use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    state::AppState,
    validate,
};

pub const BUSINESS: &str = "BUSINESS";
pub const INDIVIDUAL: &str = "INDIVIDUAL";
/// Most news articles kept as green tick evidence.
pub const MAX_ARTICLES: usize = 20;

/// The answers, stored as one JSON document (new questions need no migration).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Answers {
    /// The registered (legal) name of the business.
    pub legal_name: Option<String>,
    /// `BUSINESS` or `INDIVIDUAL`.
    pub business_type: Option<String>,
    pub industry: Option<String>,
    pub has_business_manager: bool,
    pub business_manager_verified: bool,
    pub website_url: Option<String>,
    pub website: Website,
    pub business_email: Option<String>,
    /// The number is on no WhatsApp or WhatsApp Business app.
    pub number_not_on_whatsapp: bool,
    /// The number can receive an SMS or a voice call for the code.
    pub number_receives_codes: bool,
    pub articles: Vec<Article>,
}

/// What the business website shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Website {
    pub business_name_in_header: bool,
    pub registered_name_in_footer: bool,
    pub terms_and_conditions: bool,
    pub privacy_policy: bool,
    pub contact_details: bool,
    pub social_links: bool,
}

/// A news article about the business (green tick evidence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Article {
    pub url: String,
    pub publisher: Option<String>,
    /// Paid PR does not count.
    pub paid: bool,
}

/// A change to the answers: only what is given changes (articles are replaced whole).
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub legal_name: Option<String>,
    pub business_type: Option<String>,
    pub industry: Option<String>,
    pub has_business_manager: Option<bool>,
    pub business_manager_verified: Option<bool>,
    pub website_url: Option<String>,
    pub business_name_in_header: Option<bool>,
    pub registered_name_in_footer: Option<bool>,
    pub terms_and_conditions: Option<bool>,
    pub privacy_policy: Option<bool>,
    pub contact_details: Option<bool>,
    pub social_links: Option<bool>,
    pub business_email: Option<String>,
    pub number_not_on_whatsapp: Option<bool>,
    pub number_receives_codes: Option<bool>,
    pub articles: Option<Vec<Article>>,
}

/// How an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemStatus {
    Met,
    /// Required and not met.
    Missing,
    /// Recommended and not met: the application can go ahead, with limits.
    Recommended,
    /// Rules the application out (a restricted industry).
    Blocked,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Met => "MET",
            Self::Missing => "MISSING",
            Self::Recommended => "RECOMMENDED",
            Self::Blocked => "BLOCKED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Item {
    pub key: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub status: ItemStatus,
    /// Why the item matters for the application.
    pub why: &'static str,
    /// What exactly is wrong, when something is.
    pub detail: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub answers: Answers,
    pub items: Vec<Item>,
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

impl Evaluation {
    /// Keys of required items not met (blocked ones included).
    pub fn missing(&self) -> Vec<&'static str> {
        self.items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Missing | ItemStatus::Blocked))
            .map(|i| i.key)
            .collect()
    }

    pub fn ready(&self) -> bool {
        self.missing().is_empty()
    }

    pub fn blocked(&self) -> Option<&Item> {
        self.items.iter().find(|i| i.status == ItemStatus::Blocked)
    }
}

pub async fn answers<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<(Answers, Option<chrono::DateTime<Utc>>)> {
    let Some(row) = onboarding_profile::Entity::find_by_id(project_id)
        .one(conn)
        .await?
    else {
        return Ok((Answers::default(), None));
    };
    let answers = serde_json::from_str(&row.answers).map_err(AppError::internal)?;
    Ok((answers, Some(row.updated_at)))
}

pub async fn evaluation(state: &AppState, project_id: Uuid) -> AppResult<Evaluation> {
    let (answers, updated_at) = answers(&state.db, project_id).await?;
    Ok(evaluate(
        answers,
        updated_at,
        &state.settings.onboarding.restricted_industries,
    ))
}

/// Applies `change` (validated) and returns the new evaluation.
pub async fn update(state: &AppState, scope: &Scope, change: Change) -> AppResult<Evaluation> {
    let (mut a, _) = answers(&state.db, scope.project_id).await?;
    let optional_text = |field: &'static str, value: String, max: usize| {
        if value.trim().is_empty() {
            Ok(None)
        } else {
            validate::text(field, &value, max).map(Some)
        }
    };
    if let Some(v) = change.legal_name {
        a.legal_name = optional_text("legalName", v, 200)?;
    }
    if let Some(v) = change.business_type {
        let v = v.trim().to_ascii_uppercase();
        if v != BUSINESS && v != INDIVIDUAL {
            return Err(AppError::bad_input(
                "businessType",
                "the business type is BUSINESS or INDIVIDUAL",
            ));
        }
        a.business_type = Some(v);
    }
    if let Some(v) = change.industry {
        a.industry = optional_text("industry", v, 100)?;
    }
    if let Some(v) = change.website_url {
        a.website_url = optional_text("websiteUrl", v, 2000)?;
        if let Some(url) = &a.website_url
            && web_host(url).is_none()
        {
            return Err(AppError::bad_input(
                "websiteUrl",
                "the website is an http(s) address such as https://example.com",
            ));
        }
    }
    if let Some(v) = change.business_email {
        a.business_email = optional_text("businessEmail", v, 254)?;
        if let Some(email) = &a.business_email
            && email_domain(email).is_none()
        {
            return Err(AppError::bad_input(
                "businessEmail",
                "not an email address such as hello@example.com",
            ));
        }
    }
    if let Some(articles) = change.articles {
        if articles.len() > MAX_ARTICLES {
            return Err(AppError::bad_input(
                "articles",
                format!("at most {MAX_ARTICLES} articles"),
            ));
        }
        let mut checked: Vec<Article> = Vec::with_capacity(articles.len());
        for article in articles {
            let url = validate::text("articles.url", &article.url, 2000)?;
            if web_host(&url).is_none() {
                return Err(AppError::bad_input(
                    "articles.url",
                    "an article is an http(s) address",
                ));
            }
            let publisher = article
                .publisher
                .filter(|p| !p.trim().is_empty())
                .map(|p| validate::text("articles.publisher", &p, 200))
                .transpose()?;
            if checked.iter().any(|c| same_url(&c.url, &url)) {
                return Err(AppError::bad_input(
                    "articles.url",
                    format!("{url} is listed twice"),
                ));
            }
            checked.push(Article {
                url,
                publisher,
                paid: article.paid,
            });
        }
        a.articles = checked;
    }
    let flags = [
        (change.has_business_manager, &mut a.has_business_manager),
        (
            change.business_manager_verified,
            &mut a.business_manager_verified,
        ),
        (
            change.business_name_in_header,
            &mut a.website.business_name_in_header,
        ),
        (
            change.registered_name_in_footer,
            &mut a.website.registered_name_in_footer,
        ),
        (
            change.terms_and_conditions,
            &mut a.website.terms_and_conditions,
        ),
        (change.privacy_policy, &mut a.website.privacy_policy),
        (change.contact_details, &mut a.website.contact_details),
        (change.social_links, &mut a.website.social_links),
        (change.number_not_on_whatsapp, &mut a.number_not_on_whatsapp),
        (change.number_receives_codes, &mut a.number_receives_codes),
    ];
    for (given, field) in flags {
        if let Some(value) = given {
            *field = value;
        }
    }
    // A verified business manager is one that exists.
    if a.business_manager_verified {
        a.has_business_manager = true;
    }
    let now = state.settings.clock.now();
    let row = onboarding_profile::ActiveModel {
        project_id: sea_orm::Set(scope.project_id),
        answers: sea_orm::Set(serde_json::to_string(&a).map_err(AppError::internal)?),
        updated_by: sea_orm::Set(scope.user_id),
        updated_at: sea_orm::Set(now),
    };
    onboarding_profile::Entity::insert(row)
        .on_conflict(
            OnConflict::column(onboarding_profile::Column::ProjectId)
                .update_columns([
                    onboarding_profile::Column::Answers,
                    onboarding_profile::Column::UpdatedBy,
                    onboarding_profile::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&state.db)
        .await?;
    Ok(evaluate(
        a,
        Some(now),
        &state.settings.onboarding.restricted_industries,
    ))
}

/// The lowercase host of an http(s) URL.
pub fn web_host(url: &str) -> Option<String> {
    let parsed = Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?.to_ascii_lowercase();
    host.contains('.').then_some(host)
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The lowercase domain of an email address.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.to_ascii_lowercase();
    let ok = !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    ok.then_some(domain)
}

/// The site's domain without `www.`.
fn site_domain(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// Whether the email is on the website's domain (or one of its subdomains, or the other
/// way round: `shop.acme.com` and `acme.com` are one business's).
fn same_domain(email_domain: &str, website_host: &str) -> bool {
    let site = site_domain(website_host);
    email_domain == site
        || email_domain.ends_with(&format!(".{site}"))
        || site.ends_with(&format!(".{email_domain}"))
}

fn item(
    key: &'static str,
    label: &'static str,
    required: bool,
    met: bool,
    why: &'static str,
    detail: Option<String>,
) -> Item {
    let status = match (met, required) {
        (true, _) => ItemStatus::Met,
        (false, true) => ItemStatus::Missing,
        (false, false) => ItemStatus::Recommended,
    };
    Item {
        key,
        label,
        required,
        status,
        why,
        detail: if met { None } else { detail },
    }
}

/// The checklist items, in the order an applicant works through them.
pub fn evaluate(
    a: Answers,
    updated_at: Option<chrono::DateTime<Utc>>,
    restricted: &RestrictedIndustries,
) -> Evaluation {
    let host = a.website_url.as_deref().and_then(web_host);
    let site = |flag: bool| host.is_some() && flag;
    let mut items = vec![
        item(
            "BUSINESS_MANAGER",
            "Facebook Business Manager, with admin access",
            true,
            a.has_business_manager,
            "the application is made from the business's Facebook Business Manager, by \
             someone with admin access to it",
            Some("create one at business.facebook.com".into()),
        ),
        item(
            "BUSINESS_MANAGER_VERIFIED",
            "Business Manager verified",
            false,
            a.business_manager_verified,
            "without verification the API works with limited access (lower messaging \
             limits, no green tick); verification takes 1 to 3 days with a legal document",
            Some(
                "start the business verification in the Business Manager's security centre".into(),
            ),
        ),
        item(
            "LEGAL_NAME",
            "Registered business name",
            true,
            a.legal_name.is_some(),
            "Meta matches the application against the registered business and its \
             documents",
            None,
        ),
        item(
            "WEBSITE",
            "A working business website",
            true,
            host.is_some(),
            "Meta reviews the business through its website",
            None,
        ),
        item(
            "WEBSITE_BUSINESS_NAME",
            "Business name in the website's header",
            true,
            site(a.website.business_name_in_header),
            "the website must show whose it is",
            None,
        ),
        item(
            "WEBSITE_REGISTERED_NAME",
            "Registered business name in the website's footer",
            true,
            site(a.website.registered_name_in_footer),
            "it ties the website to the registered business",
            None,
        ),
        item(
            "WEBSITE_TERMS",
            "Terms and conditions on the website",
            true,
            site(a.website.terms_and_conditions),
            "Meta requires published terms",
            None,
        ),
        item(
            "WEBSITE_PRIVACY_POLICY",
            "Privacy policy on the website",
            true,
            site(a.website.privacy_policy),
            "Meta requires a published privacy policy",
            None,
        ),
        item(
            "WEBSITE_CONTACT_DETAILS",
            "Contact details on the website (email, phone, address)",
            true,
            site(a.website.contact_details),
            "customers and Meta must be able to reach the business",
            None,
        ),
        item(
            "WEBSITE_SOCIAL_LINKS",
            "Links to the business's social media",
            false,
            site(a.website.social_links),
            "they help Meta confirm the business is real",
            None,
        ),
    ];
    let email_domain = a.business_email.as_deref().and_then(email_domain);
    let (email_ok, email_detail) = match (&email_domain, &host) {
        (None, _) => (
            false,
            Some("add an email address of the business".to_owned()),
        ),
        (Some(_), None) => (false, Some("add the website first".to_owned())),
        (Some(domain), Some(host)) => (
            same_domain(domain, host),
            Some(format!(
                "the email's domain {domain} is not the website's {}",
                site_domain(host)
            )),
        ),
    };
    items.push(item(
        "DOMAIN_EMAIL",
        "An email address on the website's domain",
        true,
        email_ok,
        "Meta checks that the applicant belongs to the business through its domain",
        email_detail,
    ));
    items.push(item(
        "FRESH_NUMBER",
        "A number on no WhatsApp app",
        true,
        a.number_not_on_whatsapp,
        "a number on the API cannot be on WhatsApp or WhatsApp Business: delete that \
         account first",
        None,
    ));
    items.push(item(
        "NUMBER_RECEIVES_CODES",
        "The number receives an SMS or a voice call",
        true,
        a.number_receives_codes,
        "the number is verified with a code sent by SMS or voice call",
        None,
    ));
    let industry = match a.industry.as_deref() {
        None => item(
            "INDUSTRY",
            "An industry WhatsApp allows",
            true,
            false,
            "businesses in restricted industries (WhatsApp's Commerce Policy) cannot apply",
            Some("declare the business's industry".into()),
        ),
        Some(industry) => match restricted.lookup(industry) {
            Some((_, label)) => Item {
                key: "INDUSTRY",
                label: "An industry WhatsApp allows",
                required: true,
                status: ItemStatus::Blocked,
                why: "businesses in restricted industries (WhatsApp's Commerce Policy) cannot \
                      apply",
                detail: Some(format!(
                    "{label} is a restricted industry: the business cannot apply"
                )),
            },
            None => item(
                "INDUSTRY",
                "An industry WhatsApp allows",
                true,
                true,
                "",
                None,
            ),
        },
    };
    items.push(industry);
    Evaluation {
        answers: a,
        items,
        updated_at,
    }
}

/// Organic (not paid) articles, counted once per address.
pub fn organic_articles(answers: &Answers) -> usize {
    answers.articles.iter().filter(|a| !a.paid).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Answers {
        Answers {
            legal_name: Some("Acme Retail Pvt Ltd".into()),
            business_type: Some(BUSINESS.into()),
            industry: Some("retail".into()),
            has_business_manager: true,
            business_manager_verified: true,
            website_url: Some("https://www.acme.example.com".into()),
            website: Website {
                business_name_in_header: true,
                registered_name_in_footer: true,
                terms_and_conditions: true,
                privacy_policy: true,
                contact_details: true,
                social_links: true,
            },
            business_email: Some("hello@acme.example.com".into()),
            number_not_on_whatsapp: true,
            number_receives_codes: true,
            articles: Vec::new(),
        }
    }

    #[test]
    fn a_complete_checklist_is_ready() {
        let e = evaluate(complete(), None, &RestrictedIndustries::default());
        assert!(e.ready(), "{:?}", e.missing());
        assert!(e.items.iter().all(|i| i.status == ItemStatus::Met));
    }

    #[test]
    fn nothing_answered_lists_every_required_item() {
        let e = evaluate(Answers::default(), None, &RestrictedIndustries::default());
        let missing = e.missing();
        assert!(missing.contains(&"BUSINESS_MANAGER"));
        assert!(missing.contains(&"DOMAIN_EMAIL"));
        assert!(missing.contains(&"INDUSTRY"));
        assert!(!missing.contains(&"BUSINESS_MANAGER_VERIFIED"));
        let verified = e
            .items
            .iter()
            .find(|i| i.key == "BUSINESS_MANAGER_VERIFIED")
            .unwrap();
        assert_eq!(verified.status, ItemStatus::Recommended);
    }

    #[test]
    fn the_email_must_be_on_the_website_domain() {
        let mut a = complete();
        a.business_email = Some("acme@gmail.com".into());
        let e = evaluate(a, None, &RestrictedIndustries::default());
        assert_eq!(e.missing(), ["DOMAIN_EMAIL"]);
        let email = e.items.iter().find(|i| i.key == "DOMAIN_EMAIL").unwrap();
        assert!(email.detail.as_deref().unwrap().contains("gmail.com"));
        assert!(same_domain("acme.com", "shop.acme.com"));
        assert!(same_domain("mail.acme.com", "www.acme.com"));
        assert!(!same_domain("notacme.com", "acme.com"));
    }

    #[test]
    fn restricted_industries_block() {
        let mut a = complete();
        a.industry = Some("Alcohol".into());
        let e = evaluate(a, None, &RestrictedIndustries::default());
        assert_eq!(e.blocked().map(|i| i.key), Some("INDUSTRY"));
        assert!(!e.ready());
    }
}
