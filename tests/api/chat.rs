//! Live chat on two API nodes sharing PostgreSQL and Redis: intervene races, who sees an
//! intervened chat, History after 24 hours (on a clock the test moves), the assistant, and
//! subscribers that reconnect with a cursor while events keep arriving.

use std::{collections::BTreeSet, time::Duration};

use parley_api::clock::Clock;
use parley_tests::{
    Mode, Owner, Shared, TestApp, eventually,
    fake_graph::FakeGraph,
    process::ProcessNode,
    whatsapp::{APP_SECRET, VERIFY_TOKEN, inbound_text},
    ws::{Event, WsClient},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Two nodes on one database, one Redis and one clock, talking to one fake Graph API.
struct Cluster {
    a: TestApp,
    b: TestApp,
    clock: Clock,
    graph: FakeGraph,
    owner: Owner,
    shared: Shared,
}

impl Cluster {
    async fn start(name: &str) -> Self {
        let graph = FakeGraph::start().await;
        let shared = Shared::fresh(&Mode::Production).await;
        let clock = Clock::default();
        let node = |clock: Clock, url: String| {
            move |s: &mut parley_api::Settings| {
                s.clock = clock;
                s.chat_sweep_interval = Duration::from_millis(100);
                s.whatsapp.graph_url = url;
                s.whatsapp.app_secret = Some(APP_SECRET.into());
                s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
                s.whatsapp.backoff_base = Duration::from_millis(5);
            }
        };
        let a = TestApp::spawn_with(
            Mode::Production,
            &shared,
            node(clock.clone(), graph.url.clone()),
        )
        .await;
        let b = TestApp::spawn_with(
            Mode::Production,
            &shared,
            node(clock.clone(), graph.url.clone()),
        )
        .await;
        let owner = a.sign_up(name).await;
        a.connect_fixture_number(&owner).await;
        Self {
            a,
            b,
            clock,
            graph,
            owner,
            shared,
        }
    }

    /// A member with `role` (AGENT, MANAGER...).
    async fn member(&self, role: &str) -> Owner {
        self.a.add_member(&self.owner, role).await.0
    }

    /// `from` writes `text` now (by the shared clock), through node A's webhook.
    async fn writes(&self, wamid: &str, from: &str, text: &str) -> String {
        let at = self.clock.now().timestamp();
        let body = inbound_text(wamid, from, &format!("User {from}"), text, at);
        assert_eq!(self.a.post_webhook(&body).await, StatusCode::OK);
        self.a.webhooks_settled().await;
        self.contact_id(from).await
    }

    async fn contact_id(&self, from: &str) -> String {
        let phone = format!("+{from}");
        let found = self
            .a
            .gql("query($f: ContactFilterInput) { contacts(first: 50, filter: $f) { edges { node { id phone } } } }")
            .as_member(&self.owner)
            .vars(json!({ "f": { "search": phone } }))
            .data()
            .await;
        found["contacts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["phone"] == phone.as_str())
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no contact {phone}: {found}"))
    }
}

fn credentials(who: &Owner) -> Value {
    json!({ "authorization": format!("Bearer {}", who.token), "projectId": who.project_id })
}

const INTERVENE: &str =
    "mutation($c: ID!) { interveneChat(contactId: $c) { state agent { username } } }";
const RESOLVE: &str = "mutation($c: ID!) { resolveChat(contactId: $c) { state } }";

async fn chat_ids(app: &TestApp, who: &Owner, group: &str) -> Vec<String> {
    let data = app
        .gql(
            "query($g: ChatGroup!) { chats(group: $g, first: 50) { edges { node { id state } } } }",
        )
        .as_member(who)
        .vars(json!({ "g": group }))
        .data()
        .await;
    data["chats"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn of_two_agents_intervening_at_once_on_two_nodes_exactly_one_wins() {
    let cluster = Cluster::start("Race").await;
    let (x, y) = (cluster.member("AGENT").await, cluster.member("AGENT").await);
    for round in 0..5 {
        let from = format!("91981234560{round}");
        let contact = cluster
            .writes(&format!("wamid.race.{round}"), &from, "Hello")
            .await;
        let vars = json!({ "c": contact });
        let (on_a, on_b) = tokio::join!(
            cluster
                .a
                .gql(INTERVENE)
                .as_member(&x)
                .vars(vars.clone())
                .send(),
            cluster
                .b
                .gql(INTERVENE)
                .as_member(&y)
                .vars(vars.clone())
                .send(),
        );
        let wins = [&on_a, &on_b]
            .iter()
            .filter(|r| r.body.get("errors").is_none())
            .count();
        assert_eq!(wins, 1, "round {round}: {} / {}", on_a.body, on_b.body);
        let loser = if on_a.body.get("errors").is_some() {
            &on_a
        } else {
            &on_b
        };
        let message = loser.expect_error("CONFLICT");
        assert!(message.contains("another agent"), "{message}");
        let winner = if loser.body == on_a.body {
            &on_b
        } else {
            &on_a
        };
        assert_eq!(winner.body["data"]["interveneChat"]["state"], "INTERVENED");
    }
}

#[tokio::test]
async fn an_intervened_chat_is_its_agents_the_owners_and_the_managers_only() {
    let cluster = Cluster::start("Visible").await;
    let (x, y) = (cluster.member("AGENT").await, cluster.member("AGENT").await);
    let manager = cluster.member("MANAGER").await;
    let taken = cluster.writes("wamid.v.1", "919812345001", "Hi").await;
    let open = cluster.writes("wamid.v.2", "919812345002", "Hi").await;

    // Y listens on node B before X takes the chat on node A.
    let mut y_events = WsClient::connect(&cluster.b.ws_url()).await;
    y_events.init(credentials(&y)).await;
    y_events
        .subscribe(
            "y",
            "subscription { chatEvents { seq topic contactId state message { text } } }",
        )
        .await;
    let mut x_events = WsClient::connect(&cluster.b.ws_url()).await;
    x_events.init(credentials(&x)).await;
    x_events
        .subscribe(
            "x",
            "subscription { chatEvents { seq topic contactId state message { text } } }",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = cluster
        .a
        .gql(INTERVENE)
        .as_member(&x)
        .vars(json!({ "c": taken }))
        .data()
        .await;
    assert_eq!(
        took["interveneChat"]["agent"]["username"],
        x.username.as_str()
    );

    // Y can neither read nor answer it; X, the owner and the manager can.
    let read = "query($c: ID!) { chat(contactId: $c) { state } contact(id: $c) { messages(first: 5) { edges { node { text } } } } }";
    let refused = cluster
        .b
        .gql(read)
        .as_member(&y)
        .vars(json!({ "c": taken }))
        .send()
        .await;
    refused.expect_error("FORBIDDEN");
    for who in [&x, &cluster.owner, &manager] {
        let seen = cluster
            .b
            .gql(read)
            .as_member(who)
            .vars(json!({ "c": taken }))
            .data()
            .await;
        assert_eq!(seen["chat"]["state"], "INTERVENED");
    }
    let answer =
        "mutation($c: ID!, $t: String!) { sendTextMessage(contactId: $c, text: $t) { id } }";
    cluster
        .b
        .gql(answer)
        .as_member(&y)
        .vars(json!({ "c": taken, "t": "I can help" }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    assert!(
        chat_ids(&cluster.b, &y, "INTERVENED_BY_ME")
            .await
            .is_empty()
    );
    assert_eq!(
        chat_ids(&cluster.a, &x, "INTERVENED_BY_ME").await,
        std::slice::from_ref(&taken)
    );
    cluster
        .a
        .gql("{ chats(group: INTERVENED) { edges { node { id } } } }")
        .as_member(&y)
        .send()
        .await
        .expect_error("FORBIDDEN");
    assert_eq!(
        chat_ids(&cluster.a, &manager, "INTERVENED").await,
        std::slice::from_ref(&taken)
    );

    // New messages in X's chat reach X only; the other chat's reach both.
    cluster
        .writes("wamid.v.3", "919812345001", "secret order 42")
        .await;
    cluster
        .writes("wamid.v.4", "919812345002", "public question")
        .await;
    let texts = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["payload"]["data"]["chatEvents"]["message"]["text"].as_str())
            .map(str::to_owned)
            .collect()
    };
    let y_seen = texts(drain(&mut y_events).await);
    let x_seen = texts(drain(&mut x_events).await);
    assert!(x_seen.contains(&"secret order 42".to_owned()), "{x_seen:?}");
    assert!(y_seen.contains(&"public question".to_owned()), "{y_seen:?}");
    assert!(
        !y_seen.contains(&"secret order 42".to_owned()),
        "{y_seen:?}"
    );

    // Resolved, the chat is everyone's again.
    cluster
        .b
        .gql(RESOLVE)
        .as_member(&y)
        .vars(json!({ "c": taken }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    let resolved = cluster
        .b
        .gql(RESOLVE)
        .as_member(&x)
        .vars(json!({ "c": taken }))
        .data()
        .await;
    assert_eq!(resolved["resolveChat"]["state"], "HANDLED_BY_ASSISTANT");
    let seen = cluster
        .a
        .gql(read)
        .as_member(&y)
        .vars(json!({ "c": taken }))
        .data()
        .await;
    assert_eq!(seen["chat"]["state"], "HANDLED_BY_ASSISTANT");
    let mut active = chat_ids(&cluster.a, &y, "ACTIVE").await;
    active.sort();
    let mut expected = vec![taken, open];
    expected.sort();
    assert_eq!(active, expected);
}

/// Every message that arrives within a short quiet period.
async fn drain(client: &mut WsClient) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Some(event) = client.next_within(Duration::from_millis(700)).await {
        match event {
            Event::Message(m) => seen.push(m),
            Event::Closed(code) => panic!("closed with {code:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn chats_go_to_history_a_day_after_the_last_message_and_come_back_when_the_user_writes() {
    let cluster = Cluster::start("History").await;
    let agent = cluster.member("AGENT").await;
    let contact = cluster.writes("wamid.h.1", "919812345100", "Hello").await;
    cluster
        .a
        .gql(INTERVENE)
        .as_member(&agent)
        .vars(json!({ "c": contact }))
        .data()
        .await;
    let counts = "{ chatCounts { active requesting intervenedByMe intervened history } }";
    let before = cluster.b.gql(counts).as_member(&agent).data().await;
    assert_eq!(
        before["chatCounts"],
        json!({ "active": 0, "requesting": 0, "intervenedByMe": 1, "intervened": 1, "history": 0 })
    );
    let mut owner_events = WsClient::connect(&cluster.b.ws_url()).await;
    owner_events.init(credentials(&cluster.owner)).await;
    owner_events
        .subscribe(
            "o",
            "subscription { chatEvents { topic contactId state reason } }",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A day and a minute later the sweep (on either node) closes it, once.
    cluster.clock.advance(Duration::from_secs(24 * 3600 + 60));
    let state = "query($c: ID!) { chat(contactId: $c) { state agent { username } } }";
    eventually(
        Duration::from_secs(10),
        "the sweep to close the chat",
        || async {
            let chat = cluster
                .b
                .gql(state)
                .as_member(&agent)
                .vars(json!({ "c": contact }))
                .data()
                .await;
            chat["chat"]["state"] == "CLOSED"
        },
    )
    .await;
    assert_eq!(
        chat_ids(&cluster.b, &agent, "HISTORY").await,
        std::slice::from_ref(&contact)
    );
    let closed = cluster
        .a
        .gql(state)
        .as_member(&agent)
        .vars(json!({ "c": contact }))
        .data()
        .await;
    assert_eq!(closed["chat"], json!({ "state": "CLOSED", "agent": null }));
    let events = drain(&mut owner_events).await;
    let closings: Vec<&Value> = events
        .iter()
        .map(|e| &e["payload"]["data"]["chatEvents"])
        .filter(|e| e["state"] == "CLOSED")
        .collect();
    assert_eq!(closings.len(), 1, "{events:?}");
    assert_eq!(closings[0]["reason"], "history");

    // Agents cannot intervene in History; free-form messages are refused.
    cluster
        .a
        .gql(INTERVENE)
        .as_member(&agent)
        .vars(json!({ "c": contact }))
        .send()
        .await
        .expect_error("CHAT_IN_HISTORY");
    cluster
        .a
        .gql("mutation($c: ID!) { sendTextMessage(contactId: $c, text: \"Still there?\") { id } }")
        .as_member(&agent)
        .vars(json!({ "c": contact }))
        .send()
        .await
        .expect_error("CUSTOMER_SERVICE_WINDOW_CLOSED");

    // The user writes again: active again, for anyone.
    cluster
        .writes("wamid.h.2", "919812345100", "Back again")
        .await;
    let after = cluster.b.gql(counts).as_member(&agent).data().await;
    assert_eq!(
        after["chatCounts"],
        json!({ "active": 1, "requesting": 0, "intervenedByMe": 0, "intervened": 0, "history": 0 })
    );
}

#[tokio::test]
async fn the_assistant_greets_answers_keywords_hands_over_and_stays_silent_when_intervened() {
    let cluster = Cluster::start("Bot").await;
    cluster
        .a
        .gql(
            "mutation($i: AssistantSettingsInput!) { updateAssistantSettings(input: $i) { handoverKeywords } }",
        )
        .as_member(&cluster.owner)
        .vars(json!({ "i": {
            "enabled": true,
            "greeting": "Welcome to the shop!",
            "handoverKeywords": ["agent", "human"],
            "handoverReply": "A person will answer shortly.",
            "replies": [{ "keyword": "hours", "reply": "We are open 9 to 6." }],
        }}))
        .data()
        .await;
    let mut queue = WsClient::connect(&cluster.b.ws_url()).await;
    queue.init(credentials(&cluster.owner)).await;
    queue
        .subscribe(
            "q",
            "subscription { requestingQueue { contactId state reason } }",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent_texts = |graph: &FakeGraph| -> Vec<String> {
        graph
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/messages"))
            .filter_map(|r| r.body["text"]["body"].as_str().map(str::to_owned))
            .collect()
    };
    let contact = cluster
        .writes("wamid.b.1", "919812345200", "Hello there")
        .await;
    cluster
        .writes("wamid.b.2", "919812345200", "What are your hours?")
        .await;
    eventually(
        Duration::from_secs(5),
        "the assistant's replies",
        || async { sent_texts(&cluster.graph).len() == 2 },
    )
    .await;
    assert_eq!(
        sent_texts(&cluster.graph),
        ["Welcome to the shop!", "We are open 9 to 6."]
    );

    let mut events = WsClient::connect(&cluster.a.ws_url()).await;
    events.init(credentials(&cluster.owner)).await;
    events
        .subscribe(
            "e",
            "subscription { chatEvents { seq topic state message { text } } }",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster
        .writes("wamid.b.3", "919812345200", "I want a human please")
        .await;
    let queued = drain(&mut queue).await;
    // The message, then the hand-over it caused, numbered one after the other (both are
    // numbered at the end of the delivery's transaction).
    let recorded: Vec<Value> = drain(&mut events)
        .await
        .into_iter()
        .map(|m| m["payload"]["data"]["chatEvents"].clone())
        .collect();
    // (The assistant's replies are recorded once Meta has them, so the earlier reply may
    // come before them and the hand-over reply after.)
    let at = recorded
        .iter()
        .position(|e| e["message"]["text"] == "I want a human please")
        .unwrap_or_else(|| panic!("the message's event: {recorded:?}"));
    let message = &recorded[at];
    assert_eq!(message["topic"], "message.created");
    let hand_over = recorded
        .get(at + 1)
        .unwrap_or_else(|| panic!("the hand-over's event: {recorded:?}"));
    assert_eq!(hand_over["topic"], "chat.state_changed", "{recorded:?}");
    assert_eq!(hand_over["state"], "REQUESTING");
    assert_eq!(
        hand_over["seq"].as_i64().unwrap(),
        message["seq"].as_i64().unwrap() + 1
    );
    let change = &queued.last().expect("a queue event")["payload"]["data"]["requestingQueue"];
    assert_eq!(change["state"], "REQUESTING");
    assert_eq!(change["contactId"], contact.as_str());
    assert_eq!(
        chat_ids(&cluster.a, &cluster.owner, "REQUESTING").await,
        std::slice::from_ref(&contact)
    );
    eventually(Duration::from_secs(5), "the hand-over reply", || async {
        sent_texts(&cluster.graph).len() == 3
    })
    .await;

    let agent = cluster.member("AGENT").await;
    cluster
        .a
        .gql(INTERVENE)
        .as_member(&agent)
        .vars(json!({ "c": contact }))
        .data()
        .await;
    cluster
        .writes("wamid.b.4", "919812345200", "hours? agent?")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sent_texts(&cluster.graph).len(),
        3,
        "silent while intervened"
    );
    let journey = cluster
        .a
        .gql("query($c: ID!) { contact(id: $c) { journey(first: 50) { edges { node { kind actorKind } } } } }")
        .as_member(&cluster.owner)
        .vars(json!({ "c": contact }))
        .data()
        .await;
    let kinds: Vec<&str> = journey["contact"]["journey"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "contact.created",
        "message.sent",
        "chat.requested",
        "chat.intervened",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn a_subscriber_reconnecting_with_its_cursor_misses_nothing_and_sees_nothing_twice() {
    let cluster = Cluster::start("Cursor").await;
    // A third node, as a process of its own.
    let process = ProcessNode::start(&cluster.shared).await;
    const TOTAL: usize = 30;
    let writer = async {
        for i in 0..TOTAL {
            let from = format!("9198123453{:02}", i % 7);
            let at = cluster.clock.now().timestamp();
            let body = inbound_text(&format!("wamid.c.{i}"), &from, "User", &format!("m{i}"), at);
            assert_eq!(cluster.a.post_webhook(&body).await, StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let reader = async {
        let query = |after: Option<i64>| match after {
            Some(seq) => format!(
                "subscription {{ chatEvents(after: {seq}) {{ seq topic message {{ text }} }} }}"
            ),
            None => {
                "subscription { chatEvents(after: 0) { seq topic message { text } } }".to_owned()
            }
        };
        let mut seqs = Vec::new();
        let mut texts = BTreeSet::new();
        let mut last = None;
        // Three connections, each dropped after a few events, on three nodes.
        let nodes = [process.ws_url(), cluster.a.ws_url(), cluster.b.ws_url()];
        for (round, url) in nodes.iter().enumerate() {
            let mut client = WsClient::connect(url).await;
            client.init(credentials(&cluster.owner)).await;
            client.subscribe("c", &query(last)).await;
            let take = if round < 2 { 5 } else { usize::MAX };
            let mut taken = 0;
            while taken < take && texts.len() < TOTAL {
                let Some(Event::Message(m)) = client.next_within(Duration::from_secs(10)).await
                else {
                    panic!("the subscription stopped after {seqs:?}");
                };
                let event = &m["payload"]["data"]["chatEvents"];
                let seq = event["seq"].as_i64().unwrap();
                seqs.push(seq);
                last = Some(seq);
                if event["topic"] == "message.created"
                    && let Some(text) = event["message"]["text"].as_str()
                {
                    texts.insert(text.to_owned());
                }
                taken += 1;
            }
            // Dropped without a goodbye, as a lost connection would be.
            drop(client);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        (seqs, texts)
    };
    let ((), (seqs, texts)) = tokio::join!(writer, reader);
    assert_eq!(texts.len(), TOTAL, "every message arrived: {texts:?}");
    let first = seqs[0];
    let expected: Vec<i64> = (first..first + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "in order, with no gap and no duplicate");
}

#[tokio::test]
async fn identical_subscriptions_share_one_stream_and_outlive_each_other() {
    let cluster = Cluster::start("Shared").await;
    let manager = cluster.member("MANAGER").await;
    const QUERY: &str = "subscription { chatEvents { topic message { text } } }";
    let mut clients = Vec::new();
    for who in [&cluster.owner, &cluster.owner, &manager] {
        let mut client = WsClient::connect(&cluster.b.ws_url()).await;
        client.init(credentials(who)).await;
        client.subscribe("same", QUERY).await;
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e["payload"]["data"]["chatEvents"]["message"]["text"].as_str())
            .map(str::to_owned)
            .collect()
    };
    cluster.writes("wamid.s.1", "919812345400", "first").await;
    for client in &mut clients {
        assert_eq!(texts(drain(client).await), ["first"]);
    }
    // The first client leaves; the others (and one joining now) go on.
    drop(clients.remove(0));
    let mut late = WsClient::connect(&cluster.b.ws_url()).await;
    late.init(credentials(&cluster.owner)).await;
    late.subscribe("late", QUERY).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    clients.push(late);
    cluster.writes("wamid.s.2", "919812345400", "second").await;
    // Each client gets the frame under its own subscription id.
    for (client, id) in clients.iter_mut().zip(["same", "same", "late"]) {
        let frames = drain(client).await;
        assert_eq!(texts(frames.clone()), ["second"]);
        assert_eq!(frames[0]["id"], id);
    }
}
