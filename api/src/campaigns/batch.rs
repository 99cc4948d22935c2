//! The dispatcher's send path for one claim, chunk by chunk.
//!
//! What the per-message path (`messages::send::send_for_campaign`) did with ten to thirty
//! statements per message is done here per chunk of recipients with a few statements
//! each: the claimed contacts, their attributes and their pricing state are read in bulk,
//! the template, account, project and price book once per claim; each message is still
//! rendered and priced on its own, with its own message row, charge row and wallet entry.
//!
//! For each chunk, in order:
//!
//! 1. **Prepare** (one transaction, before Meta is called): the message ids are written on
//!    the recipients that this claim still holds (`status = 'SENDING'` and the claim's own
//!    `claimed_until`; a recipient another node has taken over since is left alone), then
//!    the messages (`PENDING`), the conversations they open, the wallet debit (one
//!    conditional update for the chunk; each message its own ledger entry, numbered and
//!    with its balance after, as `wallet::apply` writes them), the charges, the reached
//!    users and the analytics events. A chunk the wallet cannot pay in full is charged up
//!    to the first message it cannot pay; that one and the rest go back to the queue and
//!    the campaign pauses, as a single send would have.
//! 2. **Send**: every prepared message goes to Meta concurrently, each after the number's
//!    rate limiter lets it.
//! 3. **Record** (one transaction): what Meta answered (statuses that arrived first
//!    applied), the `message.outbound` events, the journey entries, the chats and their
//!    live events, the recipients (`SENT`, only while still claimed) with their
//!    `campaign.sent` events, and the broadcast tag. A send Meta refused is recorded one
//!    by one, as the per-message path does (failed, charge returned), and its recipient
//!    settled by the same rules.
//!
//! Chunks are pipelined (one prepared or recorded while others are sent); prepares run one
//! at a time on a node, so that the messaging limit and the wallet are read after the
//! previous chunk's writes. A node that dies mid-claim leaves at most the chunks in flight
//! recorded but unanswered: `INTERRUPTED` once the lease runs out, never sent twice.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use chrono::{DateTime, Duration, Utc};
use futures::{
    StreamExt,
    future::{Either, join_all},
    stream::FuturesUnordered,
};
use governor::DefaultDirectRateLimiter;
use parley_analytics::{Event, outbox};
use parley_entity::{
    attribute, campaign, campaign_recipient, chat, chat_event, contact, contact_attribute,
    contact_messaging, contact_tag, message, message_charge, message_status, pricing_conversation,
    project, reached_user, template, wallet_entry, whatsapp_account,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
    sea_query::{CaseStatement, Expr, OnConflict, Query, SimpleExpr},
};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    dispatcher::{Claimed, Failure, Finish, Outcome, finish, on_send_error},
    model,
};
use crate::{
    billing::{
        alerts, book,
        charges::{self, FREE_ENTRY_POINT},
        pricing::{
            self, Category, MessageKind, MonthState, OpenConversation, Outbound, PriceBook,
            UserState, WindowKind,
        },
        wallet,
    },
    chat::{self as live, events::ChatEvent},
    contacts::journey::{self, Actor, Entry},
    errors::{AppError, AppResult, ErrorCode},
    messages::{
        self as messages_mod,
        store::{ACCEPTED, FAILED, INBOUND, OUTBOUND, PENDING},
    },
    state::AppState,
    templates::{
        render::{self, ContactValues},
        service::{self as templates, ParameterInput, Rendered},
    },
    whatsapp::{
        accounts,
        provider::{Account, OutboundMessage, ProviderError, Recipient, SendReceipt},
    },
};

/// Recipients prepared, sent and recorded together (at most; a tenth of a second's worth
/// at the number's throughput, so that a slow number does not record far ahead of Meta).
const CHUNK_MAX: usize = 200;
/// Chunks in flight at once.
const PIPELINE: usize = 3;
/// A turn publishes the campaign's progress at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What one claim shares: read once.
struct Round<'a> {
    state: &'a AppState,
    found: &'a campaign::Model,
    account: &'a whatsapp_account::Model,
    provider_account: Account,
    parameters: &'a [ParameterInput],
    project: project::Model,
    /// `None`: deleted since the broadcast was created (each send fails as NOT_FOUND).
    template: Option<template::Model>,
    book: Arc<PriceBook>,
    /// A parameter names a custom attribute: the contacts' values are read.
    needs_attributes: bool,
    limiter: Arc<DefaultDirectRateLimiter>,
    actor: Actor,
    /// Prepares run one at a time (see the module documentation).
    prepare_lock: Mutex<()>,
    /// When this turn last published the campaign's progress.
    progress_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A message recorded and ready for Meta.
struct Prepared {
    contact: contact::Model,
    attempts: i32,
    message: message::Model,
    outbound: OutboundMessage,
}

/// How a dispatcher turn claims more while it sends (see [`send`]).
pub(super) struct Refill {
    /// The most recipients claimed and not yet sent at any time (one second's worth at
    /// the number's throughput, capped): what a pause lets finish.
    pub count: u32,
    pub lease: chrono::Duration,
    /// No claim is started after this long: the turn ends (other campaigns, expired
    /// claims and scheduled campaigns get their turn).
    pub window: std::time::Duration,
}

/// Recipients to send together: (contact, attempts), and the lease they were claimed under.
type ChunkOf = (Vec<(Uuid, i32)>, DateTime<Utc>);

/// What finished in a turn: a chunk (what the campaign should do next), or a claim.
enum Work {
    /// A chunk of so many recipients done.
    Chunk(usize, Vec<Outcome>),
    /// A claim of so many asked for.
    Claimed(u32, AppResult<Claimed>),
}

/// Sends the claimed recipients, and more: once half of what was claimed is sent, the
/// next claim is made while the rest goes (the campaign still running, the turn younger
/// than `refill.window`, the previous claim full, nothing asking to pause or stop), so
/// that the pipeline does not wait for claims; what is claimed and not yet sent stays
/// within `refill.count`. Returns what the campaign should do next.
pub(super) async fn send(
    state: &AppState,
    found: &campaign::Model,
    account: &whatsapp_account::Model,
    parameters: &[ParameterInput],
    claimed: Claimed,
    limiter: Arc<DefaultDirectRateLimiter>,
    refill: Refill,
) -> AppResult<Vec<Outcome>> {
    let started = std::time::Instant::now();
    let project = project::Entity::find_by_id(found.project_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    let template = template::Entity::find_by_id(found.template_id)
        .filter(template::Column::ProjectId.eq(found.project_id))
        .one(&state.db)
        .await?;
    let book = book::load(&state.db, state, &project.currency).await?;
    let needs_attributes = parameters.iter().any(|p| {
        matches!(
            render::parse(&p.value, p.fallback.as_deref()),
            render::ParamSource::Placeholder { key, .. }
                if !matches!(key.to_lowercase().as_str(), "name" | "firstname" | "lastname" | "phone")
        )
    });
    let actor = match found.created_by {
        Some(user) => Actor::User(user),
        None => Actor::System,
    };
    let per_second = usize::try_from(account.throughput_per_second.max(1)).unwrap_or(1);
    let chunk = (per_second / 10).clamp(1, CHUNK_MAX);
    let round = Round {
        state,
        found,
        account,
        provider_account: accounts::provider_account(account),
        parameters,
        project,
        template,
        book,
        needs_attributes,
        limiter,
        actor,
        prepare_lock: Mutex::new(()),
        progress_at: std::sync::Mutex::new(None),
    };
    let round = &round;
    // The embedded database has one writer: its chunks go one at a time (concurrent
    // transactions would only collide).
    let pipeline = match state.db.get_database_backend() {
        DbBackend::Postgres => PIPELINE,
        _ => 1,
    };
    let budget = refill.count.max(1) as usize;
    let mut more = claimed.recipients.len() >= budget;
    let mut queue: VecDeque<ChunkOf> = VecDeque::new();
    // Claimed and not yet done: queued, and in chunks in flight.
    let mut outstanding = split(&mut queue, claimed, chunk);
    let mut in_flight = FuturesUnordered::new();
    let (mut chunks_in_flight, mut refilling) = (0, false);
    let mut outcomes = Vec::new();
    loop {
        while chunks_in_flight < pipeline {
            let Some((ids, claim)) = queue.pop_front() else {
                break;
            };
            in_flight.push(Either::Left(round.chunk_work(ids, claim)));
            chunks_in_flight += 1;
        }
        // (On the embedded database a claim waits until nothing else is in flight.)
        let idle = pipeline > 1 || chunks_in_flight == 0;
        if more && !refilling && idle && outstanding <= budget / 2 {
            let stopping = outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Pause(_) | Outcome::Stop(_)));
            if stopping || started.elapsed() >= refill.window {
                more = false;
            } else {
                let count = u32::try_from(budget - outstanding).unwrap_or(1).max(1);
                in_flight.push(Either::Right(round.claim_work(count, refill.lease)));
                refilling = true;
            }
        }
        match in_flight.next().await {
            Some(Work::Chunk(size, done)) => {
                chunks_in_flight -= 1;
                outstanding -= size;
                outcomes.extend(done);
            }
            Some(Work::Claimed(asked, claimed)) => {
                refilling = false;
                match claimed {
                    Ok(claimed) => {
                        more = claimed.recipients.len() >= asked as usize;
                        outstanding += split(&mut queue, claimed, chunk);
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, campaign = %found.id, "a campaign claim failed");
                        more = false;
                    }
                }
            }
            None => break,
        }
    }
    // The last change of the turn, whatever the gate let through before.
    super::progress::publish(state, found.id).await;
    Ok(outcomes)
}

/// Queues a claim's recipients in chunks, each with the claim's lease; returns how many.
fn split(queue: &mut VecDeque<ChunkOf>, claimed: Claimed, chunk: usize) -> usize {
    for ids in claimed.recipients.chunks(chunk) {
        queue.push_back((ids.to_vec(), claimed.until));
    }
    claimed.recipients.len()
}

impl Round<'_> {
    async fn chunk_work(&self, ids: Vec<(Uuid, i32)>, claim: DateTime<Utc>) -> Work {
        Work::Chunk(
            ids.len(),
            match self.chunk(&ids, claim).await {
                Ok(outcomes) => outcomes,
                Err(err) => {
                    // What was not recorded is settled by the claim's lease.
                    tracing::warn!(error = %err, campaign = %self.found.id, "a campaign chunk failed");
                    Vec::new()
                }
            },
        )
    }

    async fn claim_work(&self, count: u32, lease: chrono::Duration) -> Work {
        let now = self.state.settings.clock.now();
        Work::Claimed(
            count,
            super::dispatcher::claim(self.state, self.found.id, count, now, lease).await,
        )
    }

    async fn chunk(&self, ids: &[(Uuid, i32)], claim: DateTime<Utc>) -> AppResult<Vec<Outcome>> {
        let (prepared, mut outcomes) = {
            let _one_at_a_time = self.prepare_lock.lock().await;
            self.prepare(ids, claim).await?
        };
        if prepared.is_empty() {
            return Ok(outcomes);
        }
        let results = join_all(prepared.iter().map(|p| self.send_one(p))).await;
        outcomes.extend(self.record(prepared, results).await?);
        self.progress().await;
        Ok(outcomes)
    }

    /// Live progress, at most once a second from a turn (the counts read every recipient
    /// of the campaign: four times a second costs a tenth of a core at 100,000).
    async fn progress(&self) {
        {
            let mut at = self.progress_at.lock().expect("progress gate");
            if at.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *at = Some(std::time::Instant::now());
        }
        super::progress::publish(self.state, self.found.id).await;
    }

    /// Step 2: one message to Meta, when the number's rate limiter lets it.
    async fn send_one(&self, p: &Prepared) -> Result<SendReceipt, ProviderError> {
        self.limiter.until_ready().await;
        let provider = self.state.whatsapp.provider(self.account);
        provider.send(&self.provider_account, &p.outbound).await
    }

    /// Step 1 (see the module documentation). Returns the messages to send, and what the
    /// campaign should do about those that were not.
    async fn prepare(
        &self,
        ids: &[(Uuid, i32)],
        claim: DateTime<Utc>,
    ) -> AppResult<(Vec<Prepared>, Vec<Outcome>)> {
        let state = self.state;
        let db = &state.db;
        let project_id = self.found.project_id;
        let now = state.settings.clock.now();
        let mut settled = Settled::new(self.found.id, now);

        let backend = db.get_database_backend();
        let contact_ids: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        let mut contacts: HashMap<Uuid, contact::Model> = contact::Entity::find()
            .filter(contact::Column::ProjectId.eq(project_id))
            .filter(any_of(
                backend,
                contact::Column::Id,
                contact_ids.iter().copied(),
            ))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        // The messaging limit: room left in the rolling 24 hours, taken in claim order.
        let mut reach = match self.account.messaging_limit {
            Some(limit) => Some(Reach::load(db, project_id, &contact_ids, limit, now).await?),
            None => None,
        };
        let mut candidates: Vec<(contact::Model, i32, Recipient)> = Vec::new();
        for &(contact_id, attempts) in ids {
            let Some(found) = contacts.remove(&contact_id) else {
                settled.finish(contact_id, Finish::Skipped(model::UNREACHABLE));
                continue;
            };
            // Opted out or blocked since the snapshot: never reached.
            if !found.opted_in {
                settled.finish(contact_id, Finish::Skipped(model::OPTED_OUT));
                continue;
            }
            if found.incoming_blocked {
                settled.finish(contact_id, Finish::Skipped(model::INCOMING_BLOCKED));
                continue;
            }
            if let Some(reach) = reach.as_mut()
                && !reach.take(contact_id)
            {
                // The limit frees up as the 24-hour window moves: try again later.
                settled.finish(contact_id, Finish::Later(now + Duration::minutes(10)));
                continue;
            }
            match recipient(&found) {
                Ok(to) => candidates.push((found, attempts, to)),
                Err(err) => settled.error(contact_id, attempts, err),
            }
        }

        // Render each for its contact.
        let mut attributes = if self.needs_attributes && !candidates.is_empty() {
            load_attributes(db, candidates.iter().map(|(c, _, _)| c.id)).await?
        } else {
            HashMap::new()
        };
        let mut rendered: Vec<(contact::Model, i32, Recipient, Rendered)> = Vec::new();
        for (found, attempts, to) in candidates {
            let values = ContactValues {
                name: found.name.clone(),
                phone: found.phone.clone(),
                attributes: attributes.remove(&found.id).unwrap_or_default(),
            };
            let result = match &self.template {
                Some(t) => templates::render_loaded(
                    t,
                    &values,
                    self.parameters,
                    self.found.header_media_link.clone(),
                ),
                None => Err(AppError::NotFound("template")),
            };
            match result {
                Ok(r) => rendered.push((found, attempts, to, r)),
                Err(err) => settled.error(found.id, attempts, err),
            }
        }

        // Price each (the per-message rules, on the pricing state read in bulk).
        let ids_to_price: Vec<Uuid> = rendered.iter().map(|(c, ..)| c.id).collect();
        let mut users = if ids_to_price.is_empty() {
            HashMap::new()
        } else {
            user_states(db, &ids_to_price, now).await?
        };
        let month_key = charges::month_key(now);
        let mut month = MonthState::new(now);
        month.free_service_used = charges::free_tier_used(db, project_id, &month_key).await?;
        let mut priced: Vec<Priced> = Vec::new();
        for (found, attempts, to, r) in rendered {
            let category = Category::parse(&r.category).unwrap_or(Category::Marketing);
            let country = found
                .phone
                .as_deref()
                .and_then(crate::contacts::phone::country_of)
                .unwrap_or_else(|| "ZZ".to_owned());
            let (user, open) = users.remove(&found.id).unwrap_or_default();
            let outbound = Outbound {
                at: now,
                kind: MessageKind::Template(category),
                country: country.clone(),
                currency: self.project.currency.clone(),
            };
            match pricing::price(&self.book, &user, &month, &outbound) {
                Ok(decided) => priced.push(Priced {
                    contact: found,
                    attempts,
                    to,
                    rendered: r,
                    country,
                    user,
                    open,
                    outbound,
                    decided,
                    message_id: Uuid::now_v7(),
                }),
                Err(err) => settled.error(found.id, attempts, charges::refusal(err)),
            }
        }

        let prepared = if priced.is_empty() {
            Vec::new()
        } else {
            let (prepared, paused) = self.write(priced, month, &month_key, claim, now).await?;
            for (contact_id, attempts, err) in paused {
                settled.error(contact_id, attempts, err);
            }
            prepared
        };
        Ok((prepared, settled.apply(self.state).await?))
    }

    /// The prepare transaction. Returns the prepared messages and the recipients whose
    /// message could not be paid (with the error a single send would have met).
    #[allow(clippy::type_complexity)]
    async fn write(
        &self,
        mut priced: Vec<Priced>,
        mut month: MonthState,
        month_key: &str,
        claim: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> AppResult<(Vec<Prepared>, Vec<(Uuid, i32, AppError)>)> {
        let state = self.state;
        let project_id = self.found.project_id;
        let campaign_id = self.found.id;
        let txn = state.db.begin().await?;
        let backend = txn.get_database_backend();

        // The recipients this claim still holds get their message ids; any other is no
        // longer ours to send. (On PostgreSQL, see [`any_of`] for the shape.)
        let attach = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "UPDATE campaign_recipients r SET message_id = \
                   ((SELECT $2::uuid[])::uuid[])[array_position((SELECT $1::uuid[])::uuid[], r.contact_id)] \
                 WHERE r.campaign_id = $3 AND r.contact_id = ANY((SELECT $1::uuid[])::uuid[]) \
                   AND (r.status = 'SENDING' AND r.claimed_until = $4) IS TRUE \
                 RETURNING r.contact_id",
                [
                    pg_array(priced.iter().map(|p| p.contact.id.to_string())).into(),
                    pg_array(priced.iter().map(|p| p.message_id.to_string())).into(),
                    campaign_id.into(),
                    claim.into(),
                ],
            ),
            _ => {
                let mut ids = CaseStatement::new();
                for p in &priced {
                    ids = ids.case(
                        Expr::col(campaign_recipient::Column::ContactId).eq(p.contact.id),
                        Expr::val(p.message_id),
                    );
                }
                backend.build(
                    Query::update()
                        .table(campaign_recipient::Entity)
                        .value(campaign_recipient::Column::MessageId, ids)
                        .and_where(
                            Expr::col(campaign_recipient::Column::CampaignId).eq(campaign_id),
                        )
                        .and_where(
                            Expr::col(campaign_recipient::Column::ContactId)
                                .is_in(priced.iter().map(|p| p.contact.id)),
                        )
                        .and_where(Expr::col(campaign_recipient::Column::Status).eq(model::SENDING))
                        .and_where(Expr::col(campaign_recipient::Column::ClaimedUntil).eq(claim))
                        .returning_col(campaign_recipient::Column::ContactId),
                )
            }
        };
        let held: std::collections::HashSet<Uuid> = txn
            .query_all(attach)
            .await?
            .iter()
            .map(|r| r.try_get_by_index::<Uuid>(0))
            .collect::<Result<_, _>>()?;
        priced.retain(|p| held.contains(&p.contact.id));

        // The month's free service conversations, taken one by one (templates never use
        // them today; kept for the rules' sake).
        for p in &mut priced {
            if p.decided.uses_free_tier {
                let era = self
                    .book
                    .era_at(now)
                    .map_or(0, |e| e.free_service_per_month);
                if charges::take_free_tier(&txn, project_id, month_key, era).await? {
                    month.free_service_used += 1;
                } else {
                    month.free_service_used = era;
                    if let Ok(again) = pricing::price(&self.book, &p.user, &month, &p.outbound) {
                        p.decided = again;
                    }
                }
            }
        }

        // The wallet: the chunk in one conditional debit; if it cannot pay it all, the
        // messages up to the first it cannot pay.
        let mut unpaid = Vec::new();
        let total: i64 = priced.iter().map(|p| p.decided.amount_micros.max(0)).sum();
        let mut charged = if total > 0 {
            debit(&txn, project_id, total, paid_count(&priced), now).await?
        } else {
            None
        };
        if total > 0 && charged.is_none() {
            let Some((balance, _)) = wallet_balance(&txn, project_id).await? else {
                return Err(AppError::NotFound("wallet"));
            };
            let mut spent = 0i64;
            let cut = priced
                .iter()
                .position(|p| {
                    spent += p.decided.amount_micros.max(0);
                    spent > balance
                })
                .unwrap_or(priced.len());
            for p in priced.drain(cut..) {
                let err = AppError::Refused {
                    code: ErrorCode::InsufficientCredits,
                    message: format!("the wallet holds {balance} micros: top up the wallet"),
                };
                unpaid.push((p.contact.id, p.attempts, err));
            }
            // The recipients left unpaid keep no message id.
            let released: Vec<Uuid> = unpaid.iter().map(|(id, _, _)| *id).collect();
            if !released.is_empty() {
                campaign_recipient::Entity::update_many()
                    .col_expr(
                        campaign_recipient::Column::MessageId,
                        Expr::val(Option::<Uuid>::None).into(),
                    )
                    .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
                    .filter(campaign_recipient::Column::ContactId.is_in(released))
                    .exec(&txn)
                    .await?;
            }
            let total: i64 = priced.iter().map(|p| p.decided.amount_micros.max(0)).sum();
            if total > 0 {
                charged = debit(&txn, project_id, total, paid_count(&priced), now).await?;
            }
        }

        // Messages first (the rows below refer to them), then what they cost.
        let stored: Vec<message::Model> = priced.iter().map(|p| self.pending(p, now)).collect();
        insert_messages(&txn, &stored).await?;
        // Click tracking (pro plan): the URL buttons sent get each recipient's own link
        // (the message keeps the template's values, as a single send stores it).
        if self.project.plan == crate::billing::plans::PRO {
            for p in &mut priced {
                if p.rendered.url_buttons.is_empty() {
                    continue;
                }
                super::links::track(
                    &txn,
                    &state.settings.public_url,
                    project_id,
                    campaign_id,
                    p.contact.id,
                    &p.rendered.url_buttons,
                    &mut p.rendered.components,
                )
                .await?;
            }
        }
        let mut events: Vec<Event> = Vec::new();
        let mut entries: Vec<wallet_entry::Model> = Vec::new();
        if let Some(debit) = &charged {
            let mut balance = debit.balance_before;
            let paid = priced.iter().filter(|p| p.decided.amount_micros > 0);
            for (seq, p) in (debit.first_seq..).zip(paid) {
                balance -= p.decided.amount_micros;
                let entry = wallet_entry::Model {
                    project_id,
                    seq,
                    kind: wallet::CHARGE.to_owned(),
                    amount_micros: -p.decided.amount_micros,
                    balance_after_micros: balance,
                    message_id: Some(p.message_id),
                    invoice_id: None,
                    campaign_id: Some(campaign_id),
                    note: Some(charge_note(p)),
                    created_by: None,
                    created_at: now,
                };
                events.push(wallet::entry_event(&entry, &debit.currency, now));
                entries.push(entry);
            }
            insert_all(
                &txn,
                entries.iter().cloned().map(wallet_entry::ActiveModel::from),
            )
            .await?;
        }
        let seq_of: HashMap<Uuid, i64> = entries
            .iter()
            .filter_map(|e| Some((e.message_id?, e.seq)))
            .collect();
        let mut conversations = Vec::new();
        let mut charges_rows = Vec::new();
        for p in &priced {
            let conversation_id = match &p.decided.opens {
                Some(opened) => {
                    let row = opened_conversation(p, opened, project_id);
                    let id = row.id;
                    conversations.push(row);
                    Some(id)
                }
                None => current_conversation(p, now),
            };
            let charge = message_charge::Model {
                message_id: p.message_id,
                project_id,
                contact_id: p.contact.id,
                campaign_id: Some(campaign_id),
                charged_at: now,
                era: p.decided.era.clone(),
                model: charges::model_name(p.decided.model).to_owned(),
                category: p.decided.category.as_str().to_owned(),
                country: p.country.clone(),
                conversation_id,
                opened_conversation: p.decided.opens.is_some(),
                billable: p.decided.billable,
                free_reason: p
                    .decided
                    .free_reason
                    .map(charges::free_reason_str)
                    .map(str::to_owned),
                uses_free_tier: p.decided.uses_free_tier,
                amount_micros: p.decided.amount_micros,
                currency: p.decided.currency.clone(),
                wallet_seq: seq_of.get(&p.message_id).copied(),
                refunded_at: None,
                meta_pricing: None,
            };
            events.push(charges::charge_event(&charge, "billing.charged", 1));
            charges_rows.push(charge);
        }
        insert_all(
            &txn,
            conversations
                .into_iter()
                .map(pricing_conversation::ActiveModel::from),
        )
        .await?;
        insert_all(
            &txn,
            charges_rows
                .into_iter()
                .map(message_charge::ActiveModel::from),
        )
        .await?;
        // Business-initiated: each counts toward the messaging limit.
        record_reached(&txn, project_id, priced.iter().map(|p| p.contact.id), now).await?;
        outbox::record_many(&txn, &events).await?;
        txn.commit().await?;
        alerts::publish(state, &entries).await;

        let prepared = priced
            .into_iter()
            .zip(stored)
            .map(|(p, message)| Prepared {
                outbound: OutboundMessage {
                    to: p.to,
                    content: crate::whatsapp::provider::Content::Template {
                        name: p.rendered.name,
                        language: p.rendered.language,
                        components: p.rendered.components,
                    },
                    reply_to: None,
                },
                contact: p.contact,
                attempts: p.attempts,
                message,
            })
            .collect();
        Ok((prepared, unpaid))
    }

    fn pending(&self, p: &Priced, now: DateTime<Utc>) -> message::Model {
        let stored = json!({
            "template": { "name": p.rendered.name, "language": p.rendered.language },
            "text": p.rendered.preview,
            "components": p.rendered.components,
        });
        message::Model {
            id: p.message_id,
            project_id: self.found.project_id,
            contact_id: p.contact.id,
            direction: OUTBOUND.into(),
            kind: "template".into(),
            content: stored.to_string(),
            wa_message_id: None,
            status: PENDING.into(),
            error_code: None,
            error_title: None,
            template_id: Some(self.found.template_id),
            context_wa_message_id: None,
            reply_to_message_id: None,
            referral: None,
            pricing: None,
            sent_by: self.found.created_by,
            occurred_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            replied_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Step 3 (see the module documentation).
    async fn record(
        &self,
        prepared: Vec<Prepared>,
        results: Vec<Result<SendReceipt, ProviderError>>,
    ) -> AppResult<Vec<Outcome>> {
        let state = self.state;
        let project_id = self.found.project_id;
        let campaign_id = self.found.id;
        let now = state.settings.clock.now();
        let updated_at = Utc::now();
        let txn = state.db.begin().await?;
        let backend = txn.get_database_backend();

        let mut saved: Vec<(Prepared, Option<ProviderError>)> = Vec::new();
        let mut accepted = CaseStatement::new();
        let mut accepted_ids = Vec::new();
        let mut accepted_wamids = Vec::new();
        let mut refunds = Vec::new();
        for (mut p, result) in prepared.into_iter().zip(results) {
            p.message.updated_at = updated_at;
            match result {
                Ok(receipt) => {
                    accepted = accepted.case(
                        Expr::col(message::Column::Id).eq(p.message.id),
                        Expr::val(receipt.wa_message_id.clone()),
                    );
                    accepted_ids.push(p.message.id);
                    accepted_wamids.push(receipt.wa_message_id.clone());
                    p.message.wa_message_id = Some(receipt.wa_message_id);
                    p.message.status = ACCEPTED.into();
                    saved.push((p, None));
                }
                Err(err) => {
                    // Refused by Meta: recorded as the per-message path does.
                    p.message.status = FAILED.into();
                    p.message.failed_at = Some(updated_at);
                    p.message.error_code = err.code;
                    p.message.error_title = Some(err.message.clone());
                    message::Entity::update_many()
                        .col_expr(message::Column::Status, Expr::val(FAILED).into())
                        .col_expr(message::Column::FailedAt, Expr::val(updated_at).into())
                        .col_expr(message::Column::ErrorCode, Expr::val(err.code).into())
                        .col_expr(
                            message::Column::ErrorTitle,
                            Expr::val(err.message.clone()).into(),
                        )
                        .col_expr(message::Column::UpdatedAt, Expr::val(updated_at).into())
                        .filter(message::Column::Id.eq(p.message.id))
                        .exec(&txn)
                        .await?;
                    saved.push((p, Some(err)));
                }
            }
        }
        if !accepted_ids.is_empty() {
            let update = match backend {
                DbBackend::Postgres => Statement::from_sql_and_values(
                    backend,
                    "UPDATE messages m SET status = $3, updated_at = $4, wa_message_id = \
                       ((SELECT $2::text[])::text[])[array_position((SELECT $1::uuid[])::uuid[], m.id)] \
                     WHERE m.id = ANY((SELECT $1::uuid[])::uuid[])",
                    [
                        pg_array(accepted_ids.iter().map(Uuid::to_string)).into(),
                        pg_array(accepted_wamids).into(),
                        ACCEPTED.into(),
                        updated_at.into(),
                    ],
                ),
                _ => backend.build(
                    Query::update()
                        .table(message::Entity)
                        .value(message::Column::WaMessageId, accepted)
                        .value(message::Column::Status, ACCEPTED)
                        .value(message::Column::UpdatedAt, updated_at)
                        .and_where(Expr::col(message::Column::Id).is_in(accepted_ids)),
                ),
            };
            txn.execute(update).await?;
            // Statuses that arrived before the answer did (rare): applied now.
            let wamids: Vec<String> = saved
                .iter()
                .filter_map(|(p, _)| p.message.wa_message_id.clone())
                .collect();
            let early: std::collections::HashSet<String> = message_status::Entity::find()
                .select_only()
                .column(message_status::Column::WaMessageId)
                .filter(message_status::Column::ProjectId.eq(project_id))
                .filter(match backend {
                    DbBackend::Postgres => Expr::cust_with_values(
                        r#""message_statuses"."wa_message_id" = ANY((SELECT $1::text[])::text[])"#,
                        [pg_array(wamids)],
                    ),
                    _ => message_status::Column::WaMessageId.is_in(wamids),
                })
                .into_tuple::<String>()
                .all(&txn)
                .await?
                .into_iter()
                .collect();
            for (p, _) in &mut saved {
                if p.message
                    .wa_message_id
                    .as_ref()
                    .is_some_and(|w| early.contains(w))
                    && let Some(refreshed) =
                        crate::messages::store::refresh(&txn, p.message.clone()).await?
                {
                    p.message = refreshed;
                }
            }
        }
        // Meta refused it (or a status said it failed first): the charge comes back.
        for (p, _) in &saved {
            if p.message.status == FAILED
                && let Some(entry) =
                    charges::refund_failed(&txn, p.message.id, state.settings.clock.now()).await?
            {
                refunds.push(entry);
            }
        }

        // The analytics event, the journey, the chat, as each send records them.
        let mut events: Vec<Event> = saved
            .iter()
            .map(|(p, failure)| {
                let m = &p.message;
                let mut event = Event::new(
                    project_id,
                    "message.outbound",
                    None,
                    json!({
                        "messageId": m.id,
                        "contactId": m.contact_id,
                        "waMessageId": m.wa_message_id,
                        "type": m.kind,
                        "templateId": m.template_id,
                        "accepted": failure.is_none(),
                        "errorCode": m.error_code,
                    }),
                );
                event.occurred_at = m.occurred_at;
                event
            })
            .collect();
        if let Some((first, _)) = saved.first() {
            let entries = saved
                .iter()
                .map(|(p, _)| {
                    Entry::new(
                        p.message.contact_id,
                        "template.sent",
                        json!({
                            "messageId": p.message.id,
                            "type": p.message.kind,
                            "templateId": p.message.template_id,
                            "status": p.message.status,
                        }),
                    )
                })
                .collect();
            journey::record_at(
                &txn,
                project_id,
                self.actor,
                entries,
                first.message.occurred_at,
            )
            .await?;
        }
        let chat_events = chats_on_outbound(&txn, project_id, &saved, now).await?;

        // The recipients, while this claim still holds them.
        let mut by_status: HashMap<&'static str, Vec<Uuid>> = HashMap::new();
        for (p, failure) in &saved {
            if failure.is_none() {
                by_status
                    .entry(super::tracking::recipient_status(&p.message.status))
                    .or_default()
                    .push(p.contact.id);
            }
        }
        let mut sent = Vec::new();
        for (status, contact_ids) in by_status {
            let update = match backend {
                // See `any_of` for the shape.
                DbBackend::Postgres => Statement::from_sql_and_values(
                    backend,
                    "UPDATE campaign_recipients r SET status = $2, sent_at = $3, \
                       updated_at = $3, claimed_until = NULL \
                     WHERE r.campaign_id = $4 AND r.contact_id = ANY((SELECT $1::uuid[])::uuid[]) \
                       AND (r.status = 'SENDING') IS TRUE \
                     RETURNING r.contact_id",
                    [
                        pg_array(contact_ids.iter().map(Uuid::to_string)).into(),
                        status.into(),
                        now.into(),
                        campaign_id.into(),
                    ],
                ),
                _ => backend.build(
                    Query::update()
                        .table(campaign_recipient::Entity)
                        .value(campaign_recipient::Column::Status, status)
                        .value(campaign_recipient::Column::SentAt, now)
                        .value(campaign_recipient::Column::UpdatedAt, now)
                        .value(
                            campaign_recipient::Column::ClaimedUntil,
                            Option::<DateTime<Utc>>::None,
                        )
                        .and_where(
                            Expr::col(campaign_recipient::Column::CampaignId).eq(campaign_id),
                        )
                        .and_where(
                            Expr::col(campaign_recipient::Column::ContactId).is_in(contact_ids),
                        )
                        .and_where(Expr::col(campaign_recipient::Column::Status).eq(model::SENDING))
                        .returning_col(campaign_recipient::Column::ContactId),
                ),
            };
            for row in txn.query_all(update).await? {
                sent.push(row.try_get_by_index::<Uuid>(0)?);
            }
        }
        for contact_id in &sent {
            let mut event = Event::new(
                project_id,
                "campaign.sent",
                None,
                json!({ "campaignId": campaign_id, "contactId": contact_id }),
            );
            event.occurred_at = now;
            events.push(event);
        }
        outbox::record_many(&txn, &events).await?;
        if let Some(tag_id) = self.found.broadcast_tag_id {
            // The broadcast's tag on each contact it reached (kept if it has it already).
            let rows: Vec<contact_tag::ActiveModel> = saved
                .iter()
                .filter(|(_, failure)| failure.is_none())
                .map(|(p, _)| contact_tag::ActiveModel {
                    contact_id: Set(p.contact.id),
                    tag_id: Set(tag_id),
                    project_id: Set(project_id),
                    added_at: Set(now),
                    added_by: Set(self.found.created_by),
                })
                .collect();
            if !rows.is_empty() {
                contact_tag::Entity::insert_many(rows)
                    .on_conflict(
                        OnConflict::columns([
                            contact_tag::Column::ContactId,
                            contact_tag::Column::TagId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        live::events::publish(state, chat_events).await;
        alerts::publish(state, &refunds).await;

        // Meta's refusals: settled by the same rules as a single send.
        let mut settled = Settled::new(campaign_id, now);
        for (p, failure) in saved {
            if let Some(err) = failure {
                settled.error(p.contact.id, p.attempts, err.into());
            }
        }
        settled.apply(state).await
    }
}

/// A message rendered and priced, not yet written.
struct Priced {
    contact: contact::Model,
    attempts: i32,
    to: Recipient,
    rendered: Rendered,
    country: String,
    user: UserState,
    /// The contact's windows as stored (for the conversation a message rides in).
    open: Vec<pricing_conversation::Model>,
    outbound: Outbound,
    decided: pricing::Pricing,
    message_id: Uuid,
}

fn paid_count(priced: &[Priced]) -> i64 {
    priced
        .iter()
        .filter(|p| p.decided.amount_micros > 0)
        .count() as i64
}

fn charge_note(p: &Priced) -> String {
    format!(
        "{} {} to {}",
        p.decided.category.as_str().to_lowercase(),
        if p.decided.opens.is_some() {
            "conversation"
        } else {
            "message"
        },
        p.country
    )
}

fn recipient(contact: &contact::Model) -> AppResult<Recipient> {
    match (&contact.phone, &contact.bsuid) {
        (Some(phone), _) => Ok(Recipient::Phone(phone.clone())),
        (None, Some(bsuid)) => Ok(Recipient::Bsuid(bsuid.clone())),
        (None, None) => Err(AppError::bad_input(
            "contactId",
            "the contact has neither a phone number nor a WhatsApp user id",
        )),
    }
}

/// The messaging limit for one chunk: who was reached in the window, and the room left.
struct Reach {
    already: std::collections::HashSet<Uuid>,
    room: u64,
}

impl Reach {
    async fn load<C: ConnectionTrait>(
        conn: &C,
        project_id: Uuid,
        contact_ids: &[Uuid],
        limit: i32,
        now: DateTime<Utc>,
    ) -> AppResult<Self> {
        let since = now - Duration::hours(24);
        let already = reached_user::Entity::find()
            .select_only()
            .column(reached_user::Column::ContactId)
            .filter(reached_user::Column::ProjectId.eq(project_id))
            .filter(any_of(
                conn.get_database_backend(),
                reached_user::Column::ContactId,
                contact_ids.iter().copied(),
            ))
            .filter(reached_user::Column::LastAt.gt(since))
            .into_tuple::<Uuid>()
            .all(conn)
            .await?
            .into_iter()
            .collect();
        let reached = super::limits::reached_today(conn, project_id, now).await?;
        Ok(Self {
            already,
            room: u64::try_from(limit).unwrap_or(0).saturating_sub(reached),
        })
    }

    /// Whether the contact may be reached now (taking a place if it was not yet).
    fn take(&mut self, contact_id: Uuid) -> bool {
        if self.already.contains(&contact_id) {
            return true;
        }
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        self.already.insert(contact_id);
        true
    }
}

/// Custom attribute values of the contacts, keyed by lowercase attribute key.
async fn load_attributes<C: ConnectionTrait>(
    conn: &C,
    contact_ids: impl Iterator<Item = Uuid>,
) -> AppResult<HashMap<Uuid, HashMap<String, String>>> {
    let mut out: HashMap<Uuid, HashMap<String, String>> = HashMap::new();
    for (value, definition) in contact_attribute::Entity::find()
        .filter(any_of(
            conn.get_database_backend(),
            contact_attribute::Column::ContactId,
            contact_ids,
        ))
        .find_also_related(attribute::Entity)
        .all(conn)
        .await?
    {
        if let Some(definition) = definition {
            out.entry(value.contact_id)
                .or_default()
                .insert(definition.key_lower, value.value);
        }
    }
    Ok(out)
}

#[derive(FromQueryResult)]
struct LastReferral {
    contact_id: Uuid,
    at: DateTime<Utc>,
}

/// The pricing state of each contact as `charges` reads it for one message: the windows
/// still open (or opened for the latest free-entry-point inbound), the last inbound
/// message and the last one that came from an ad or a page button.
async fn user_states<C: ConnectionTrait>(
    conn: &C,
    contact_ids: &[Uuid],
    at: DateTime<Utc>,
) -> AppResult<HashMap<Uuid, (UserState, Vec<pricing_conversation::Model>)>> {
    let backend = conn.get_database_backend();
    let mut states: HashMap<Uuid, (UserState, Vec<pricing_conversation::Model>)> = HashMap::new();
    for m in contact_messaging::Entity::find()
        .filter(any_of(
            backend,
            contact_messaging::Column::ContactId,
            contact_ids.iter().copied(),
        ))
        .all(conn)
        .await?
    {
        // Meta's clock may run a little ahead of ours: a message "from the future" counts
        // as written now.
        states.entry(m.contact_id).or_default().0.last_inbound_at =
            m.last_inbound_at.map(|t| t.min(at));
    }
    for r in message::Entity::find()
        .select_only()
        .column(message::Column::ContactId)
        .column_as(Expr::col(message::Column::OccurredAt).max(), "at")
        .filter(any_of(
            backend,
            message::Column::ContactId,
            contact_ids.iter().copied(),
        ))
        .filter(message::Column::Direction.eq(INBOUND))
        .filter(message::Column::Referral.is_not_null())
        .group_by(message::Column::ContactId)
        .into_model::<LastReferral>()
        .all(conn)
        .await?
    {
        states
            .entry(r.contact_id)
            .or_default()
            .0
            .last_free_entry_inbound_at = Some(r.at.min(at));
    }
    // Windows last at most a few days: anything opened over a week ago is closed.
    for row in pricing_conversation::Entity::find()
        .filter(any_of(
            backend,
            pricing_conversation::Column::ContactId,
            contact_ids.iter().copied(),
        ))
        .filter(pricing_conversation::Column::VoidedAt.is_null())
        .filter(pricing_conversation::Column::ExpiresAt.gt(at - Duration::days(7)))
        .order_by_asc(pricing_conversation::Column::OpenedAt)
        .all(conn)
        .await?
    {
        let (user, open) = states.entry(row.contact_id).or_default();
        let window = |kind| OpenConversation {
            kind,
            opened_at: row.opened_at,
            expires_at: row.expires_at,
            free: !row.billable,
        };
        if row.category == FREE_ENTRY_POINT {
            user.free_entry_window = Some(window(WindowKind::FreeEntryPoint));
        } else if let Some(category) = Category::parse(&row.category)
            && row.expires_at > at
        {
            user.conversations
                .push(window(WindowKind::Conversation(category)));
        }
        open.push(row);
    }
    Ok(states)
}

fn opened_conversation(
    p: &Priced,
    opened: &OpenConversation,
    project_id: Uuid,
) -> pricing_conversation::Model {
    pricing_conversation::Model {
        id: Uuid::now_v7(),
        project_id,
        contact_id: p.contact.id,
        category: match opened.kind {
            WindowKind::FreeEntryPoint => FREE_ENTRY_POINT.to_owned(),
            WindowKind::Conversation(c) => c.as_str().to_owned(),
        },
        opened_at: opened.opened_at,
        expires_at: opened.expires_at,
        era: p.decided.era.clone(),
        country: p.country.clone(),
        billable: p.decided.billable,
        free_reason: p
            .decided
            .free_reason
            .map(charges::free_reason_str)
            .map(str::to_owned),
        amount_micros: p.decided.amount_micros,
        currency: p.decided.currency.clone(),
        message_id: p.message_id,
        voided_at: None,
    }
}

/// The open window a message that opens none rides in, for the record (as
/// `charges::current_conversation` finds it, from the rows already read).
fn current_conversation(p: &Priced, at: DateTime<Utc>) -> Option<Uuid> {
    let wanted = if p.user.free_entry_window_open(at) {
        FREE_ENTRY_POINT.to_owned()
    } else {
        let MessageKind::Template(c) = p.outbound.kind else {
            return None;
        };
        p.user.open_conversation(at, c)?;
        c.as_str().to_owned()
    };
    p.open
        .iter()
        .find(|c| c.category == wanted && c.opened_at <= at && c.expires_at > at)
        .map(|c| c.id)
}

/// The chunk's debit: the balance before it and the first ledger number it took.
struct Debit {
    balance_before: i64,
    first_seq: i64,
    currency: String,
}

/// One conditional debit of `total` for `entries` ledger entries; `None` when the balance
/// cannot cover it (nothing changed). The wallet row stays locked until the transaction
/// ends, so the entries are numbered in order.
async fn debit(
    txn: &DatabaseTransaction,
    project_id: Uuid,
    total: i64,
    entries: i64,
    now: DateTime<Utc>,
) -> AppResult<Option<Debit>> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE wallets SET balance_micros = balance_micros - $1, last_seq = last_seq + $2, \
             updated_at = $3 WHERE project_id = $4 AND balance_micros - $1 >= 0 \
             RETURNING balance_micros, last_seq, currency"
        }
        _ => {
            "UPDATE wallets SET balance_micros = balance_micros - ?1, last_seq = last_seq + ?2, \
             updated_at = ?3 WHERE project_id = ?4 AND balance_micros - ?1 >= 0 \
             RETURNING balance_micros, last_seq, currency"
        }
    };
    let row = txn
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [total.into(), entries.into(), now.into(), project_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let balance: i64 = row.try_get_by_index(0)?;
    let last_seq: i64 = row.try_get_by_index(1)?;
    Ok(Some(Debit {
        balance_before: balance + total,
        first_seq: last_seq - entries + 1,
        currency: row.try_get_by_index(2)?,
    }))
}

/// The balance, with the row locked for the rest of the transaction (PostgreSQL; the
/// embedded database has one writer).
async fn wallet_balance(
    txn: &DatabaseTransaction,
    project_id: Uuid,
) -> AppResult<Option<(i64, i64)>> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT balance_micros, last_seq FROM wallets WHERE project_id = $1 FOR UPDATE"
        }
        _ => "SELECT balance_micros, last_seq FROM wallets WHERE project_id = ?1",
    };
    let row = txn
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [project_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Some((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
        None => None,
    })
}

/// Rows per multi-row INSERT: well under both backends' bind-parameter limits.
const INSERT_ROWS: usize = 500;

async fn insert_all<C, A>(conn: &C, rows: impl IntoIterator<Item = A>) -> AppResult<()>
where
    C: ConnectionTrait,
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    let rows: Vec<A> = rows.into_iter().collect();
    for chunk in rows.chunks(INSERT_ROWS) {
        <A::Entity as EntityTrait>::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

async fn insert_messages<C: ConnectionTrait>(conn: &C, rows: &[message::Model]) -> AppResult<()> {
    insert_all(conn, rows.iter().cloned().map(message::ActiveModel::from)).await
}

/// Records business-initiated messages to the contacts (the messaging limit's window).
async fn record_reached<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    contact_ids: impl Iterator<Item = Uuid>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let rows: Vec<reached_user::ActiveModel> = contact_ids
        .map(|contact_id| reached_user::ActiveModel {
            project_id: Set(project_id),
            contact_id: Set(contact_id),
            last_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(INSERT_ROWS) {
        reached_user::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    reached_user::Column::ProjectId,
                    reached_user::Column::ContactId,
                ])
                .update_column(reached_user::Column::LastAt)
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// `chat::service::on_message` for the chunk's outbound messages (created now): each
/// contact's chat (created if it had none) gets the message as its last one if it is the
/// latest, and a `message.created` event numbered in the project's sequence (seen only by
/// the agent of an intervened chat). Returns the events to publish after commit.
async fn chats_on_outbound(
    txn: &DatabaseTransaction,
    project_id: Uuid,
    saved: &[(Prepared, Option<ProviderError>)],
    now: DateTime<Utc>,
) -> AppResult<Vec<ChatEvent>> {
    if saved.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let contact_ids: Vec<Uuid> = saved.iter().map(|(p, _)| p.contact.id).collect();
    let rows: Vec<chat::ActiveModel> = contact_ids
        .iter()
        .map(|contact_id| chat::ActiveModel {
            contact_id: Set(*contact_id),
            project_id: Set(project_id),
            agent_id: Set(None),
            state_changed_at: Set(now),
            requested_at: Set(None),
            intervened_at: Set(None),
            last_message_at: Set(None),
            last_message_id: Set(None),
        })
        .collect();
    for chunk in rows.chunks(INSERT_ROWS) {
        chat::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(chat::Column::ContactId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    let chats: HashMap<Uuid, chat::Model> = chat::Entity::find()
        .filter(any_of(
            backend,
            chat::Column::ContactId,
            contact_ids.iter().copied(),
        ))
        .all(txn)
        .await?
        .into_iter()
        .map(|c| (c.contact_id, c))
        .collect();
    // The latest message of each chat (a newer one may have come in meanwhile).
    let mut latest = CaseStatement::new();
    let mut newer = Vec::new();
    for (p, _) in saved {
        let at = p.message.occurred_at;
        if chats
            .get(&p.contact.id)
            .is_none_or(|c| c.last_message_at.is_none_or(|last| at >= last))
        {
            latest = latest.case(
                Expr::col(chat::Column::ContactId).eq(p.contact.id),
                Expr::val(p.message.id),
            );
            newer.push((p.contact.id, p.message.id));
        }
    }
    if let (false, Some((first, _))) = (newer.is_empty(), saved.first()) {
        let at = first.message.occurred_at;
        let update = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "UPDATE chats c SET last_message_at = $3, last_message_id = \
                   ((SELECT $2::uuid[])::uuid[])[array_position((SELECT $1::uuid[])::uuid[], c.contact_id)] \
                 WHERE c.contact_id = ANY((SELECT $1::uuid[])::uuid[])",
                [
                    pg_array(newer.iter().map(|(c, _)| c.to_string())).into(),
                    pg_array(newer.iter().map(|(_, m)| m.to_string())).into(),
                    at.into(),
                ],
            ),
            _ => backend.build(
                Query::update()
                    .table(chat::Entity)
                    .value(chat::Column::LastMessageAt, at)
                    .value(chat::Column::LastMessageId, latest)
                    .and_where(
                        Expr::col(chat::Column::ContactId).is_in(newer.iter().map(|(c, _)| *c)),
                    ),
            ),
        };
        txn.execute(update).await?;
    }

    // Numbers for the events: the counter row stays locked until commit, so they are
    // committed in order.
    let n = i64::try_from(saved.len()).unwrap_or(i64::MAX);
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO project_sequences (project_id, last_seq) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET last_seq = project_sequences.last_seq + $2 \
             RETURNING last_seq"
        }
        _ => {
            "INSERT INTO project_sequences (project_id, last_seq) VALUES (?1, ?2) \
             ON CONFLICT (project_id) DO UPDATE SET last_seq = project_sequences.last_seq + ?2 \
             RETURNING last_seq"
        }
    };
    let last: i64 = txn
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [project_id.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no sequence row")))?
        .try_get_by_index(0)?;
    let mut events = Vec::with_capacity(saved.len());
    for (i, (p, _)) in saved.iter().enumerate() {
        let agent_id = (p.contact.state == live::service::INTERVENED)
            .then(|| chats.get(&p.contact.id).and_then(|c| c.agent_id))
            .flatten();
        events.push(ChatEvent {
            project_id,
            seq: last - n + 1 + i as i64,
            contact_id: Some(p.contact.id),
            topic: live::service::MESSAGE_CREATED.to_owned(),
            agent_id,
            payload: messages_mod::live_payload(&p.message),
            created_at: now,
            message: None,
        });
    }
    insert_all(
        txn,
        events.iter().map(|e| chat_event::ActiveModel {
            project_id: Set(e.project_id),
            seq: Set(e.seq),
            contact_id: Set(e.contact_id),
            topic: Set(e.topic.clone()),
            agent_id: Set(e.agent_id),
            payload: Set(e.payload.to_string()),
            created_at: Set(e.created_at),
        }),
    )
    .await?;
    Ok(events)
}

/// `column IN (ids)`.
///
/// How the chunk's statements name many rows on PostgreSQL, whatever the planner knows:
///
/// The ids go as one text parameter, read as an array once per execution by an InitPlan:
/// `col = ANY((SELECT $1::uuid[])::uuid[])`, and a value per row is taken from a second
/// array at the row's position (`array_position`). A list of n parameters (`IN ($1, …)`)
/// is planned for what the table was when the connection first ran it: planned while a
/// table was small it scans the whole table ever after, rebuilding the list for every
/// row; `= ANY($1::uuid[])` in a cached generic plan parses the text for every row it
/// filters; a join with `unnest(…)` is planned as a nested loop over every row of the
/// campaign when the table has no statistics yet (a fresh snapshot). The array behind an
/// InitPlan is opaque to the planner, which then looks the rows up by key (the guards on
/// `status` are written `(…) IS TRUE` so that the queue index is not taken for them).
/// 2 to 4 ms per chunk of 200 instead of up to 330 ms.
fn any_of<T: ColumnTrait>(
    backend: DbBackend,
    column: T,
    ids: impl IntoIterator<Item = Uuid>,
) -> SimpleExpr {
    match backend {
        DbBackend::Postgres => Expr::cust_with_values(
            format!(
                r#""{}"."{}" = ANY((SELECT $1::uuid[])::uuid[])"#,
                column.entity_name().to_string(),
                column.as_str()
            ),
            [pg_array(ids.into_iter().map(|id| id.to_string()))],
        ),
        _ => column.is_in(ids),
    }
}

/// A PostgreSQL array literal of the values, each quoted.
fn pg_array(values: impl IntoIterator<Item = String>) -> String {
    let quoted: Vec<String> = values
        .into_iter()
        .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// Recipients that will not be sent now, settled one by one after the chunk's work (rare),
/// and what the campaign should do about them.
struct Settled {
    campaign_id: Uuid,
    now: DateTime<Utc>,
    finishes: Vec<(Uuid, Finish)>,
    outcomes: Vec<Outcome>,
}

impl Settled {
    fn new(campaign_id: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            campaign_id,
            now,
            finishes: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn finish(&mut self, contact_id: Uuid, outcome: Finish) {
        self.finishes.push((contact_id, outcome));
    }

    /// A send that failed, by the rules a single send is settled by.
    fn error(&mut self, contact_id: Uuid, attempts: i32, err: AppError) {
        match on_send_error(err, attempts, self.now) {
            Failure::Settle(finish, outcome) => {
                self.finishes.push((contact_id, finish));
                self.outcomes.push(outcome);
            }
            Failure::Leave(err) => {
                // The claim's lease will settle it.
                tracing::warn!(error = %err, campaign = %self.campaign_id, "a campaign send failed");
            }
        }
    }

    async fn apply(self, state: &AppState) -> AppResult<Vec<Outcome>> {
        for (contact_id, outcome) in self.finishes {
            finish(state, self.campaign_id, contact_id, outcome, self.now).await?;
        }
        Ok(self.outcomes)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::QueryTrait;

    use super::*;

    #[test]
    fn an_id_list_is_one_array_parameter_on_postgresql() {
        let id = Uuid::nil();
        let select = contact::Entity::find()
            .filter(contact::Column::ProjectId.eq(id))
            .filter(any_of(DbBackend::Postgres, contact::Column::Id, [id, id]))
            .build(DbBackend::Postgres);
        assert!(
            select.sql.ends_with(
                r#"WHERE "contacts"."project_id" = $1 AND ("contacts"."id" = ANY((SELECT $2::uuid[])::uuid[]))"#
            ),
            "{}",
            select.sql
        );
        let values = select.values.expect("values").0;
        assert_eq!(values.len(), 2);
        assert_eq!(
            values[1],
            sea_orm::Value::from(format!(r#"{{"{id}","{id}"}}"#))
        );
        let sqlite = contact::Entity::find()
            .filter(any_of(DbBackend::Sqlite, contact::Column::Id, [id, id]))
            .build(DbBackend::Sqlite);
        assert!(
            sqlite.sql.ends_with(r#"WHERE "contacts"."id" IN (?, ?)"#),
            "{}",
            sqlite.sql
        );
    }

    #[test]
    fn array_literals_quote_every_value() {
        assert_eq!(
            pg_array(["a".to_owned(), r#"b"c\"#.to_owned()]),
            r#"{"a","b\"c\\"}"#
        );
        assert_eq!(pg_array(Vec::<String>::new()), "{}");
    }
}
