//! Onboarding: the application checklist and what it blocks, the phone-number and
//! display-name rules, the embedded sign-up against Meta's endpoints (the fake Graph API)
//! and against the sandbox (its delays on the server's clock, its failures), retries and
//! the audit trail, the number locked once live, roles and tenant isolation, green tick
//! eligibility and the wait after a rejection, leaving (downgrade, two-step
//! verification, the plan), and the website chat button clicked in a real browser.

use std::time::Duration;

use parley_api::clock::Clock;
use parley_tests::{
    Mode, Owner, Shared, TestApp,
    client::Reply,
    fake_graph::{ACCESS_TOKEN_PREFIX, FakeGraph, meta_error},
};
use serde_json::{Value, json};

const APPLICATION: &str = "id provider step status attempts numberLocked twoStepVerification \
    hasAccessToken businessManagerId wabaId timezone displayName category phoneNumber \
    phoneNumberId codeMethod processingUntil liveAt failure { step code reason retryable } \
    steps { step done current }";

const TRAIL: &str = "auditTrail(first: 100) { edges { node { step action outcome reason \
    actorId details } } }";

/// A number WhatsApp can reach, and another one.
const NUMBER: &str = "+91 98123 45678";
const NUMBER_E164: &str = "+919812345678";
const OTHER_NUMBER: &str = "+91 98765 43210";

struct Project {
    app: TestApp,
    owner: Owner,
    clock: Clock,
}

impl Project {
    /// A sandbox server (no Meta app) whose sign-up steps take `delay` on `clock`.
    async fn sandbox(name: &str, delay: Duration) -> Self {
        Self::sandbox_in(Mode::Production, name, delay).await
    }

    async fn sandbox_in(mode: Mode, name: &str, delay: Duration) -> Self {
        let clock = Clock::default();
        let shared = Shared::fresh(&mode).await;
        let test_clock = clock.clone();
        let app = TestApp::spawn_with(mode, &shared, move |s| {
            s.clock = test_clock;
            s.onboarding.sandbox_step_delay = delay;
        })
        .await;
        let owner = app.sign_up(name).await;
        Self { app, owner, clock }
    }

    async fn send(&self, who: &Owner, query: &str, vars: Value) -> Reply {
        self.app.gql(query).as_member(who).vars(vars).send().await
    }

    async fn data(&self, query: &str, vars: Value) -> Value {
        self.app
            .gql(query)
            .as_member(&self.owner)
            .vars(vars)
            .data()
            .await
    }

    async fn try_step(&self, mutation: &str, args: &str, vars: Value) -> Reply {
        let query = format!("mutation{args} {{ {mutation} {{ {APPLICATION} }} }}");
        self.send(&self.owner, &query, vars).await
    }

    /// Runs a step and returns the application it answers with.
    async fn step(&self, mutation: &str, args: &str, vars: Value) -> Value {
        let reply = self.try_step(mutation, args, vars).await;
        reply.data()[mutation.split('(').next().unwrap()].clone()
    }

    async fn current(&self) -> Value {
        let query = format!("{{ onboarding {{ {APPLICATION} {TRAIL} }} }}");
        self.data(&query, json!({})).await["onboarding"].clone()
    }

    async fn checklist(&self, input: Value) -> Value {
        self.data(
            "mutation($input: OnboardingChecklistInput!) { updateOnboardingChecklist(input: $input) {
               ready missing blockedReason items { key status required why detail } } }",
            json!({ "input": input }),
        )
        .await["updateOnboardingChecklist"]
            .clone()
    }

    async fn complete_checklist(&self) {
        let checklist = self.checklist(complete_checklist()).await;
        assert_eq!(checklist["ready"], true, "{checklist}");
    }

    async fn start(&self) -> Value {
        self.step("startOnboarding", "", json!({})).await
    }

    /// The first four steps, done.
    async fn up_to_phone_number(&self, waba_id: Option<&str>) -> Value {
        self.step(
            "connectFacebookAccount(code: $code)",
            "($code: String!)",
            json!({ "code": "login-code-1" }),
        )
        .await;
        self.step(
            "selectBusinessManager(input: $input)",
            "($input: BusinessManagerInput!)",
            json!({ "input": { "businessManagerId": "880011223344", "name": "Acme Group" } }),
        )
        .await;
        self.step(
            "setWhatsappBusinessAccount(input: $input)",
            "($input: WhatsAppBusinessAccountInput!)",
            json!({ "input": { "wabaId": waba_id, "name": "Acme WABA", "timezone": "Asia/Kolkata" } }),
        )
        .await;
        self.step(
            "setBusinessProfile(input: $input)",
            "($input: BusinessProfileInput!)",
            json!({ "input": { "displayName": "Acme Shoes", "category": "retail",
                               "description": "Shoes for every day" } }),
        )
        .await
    }

    async fn submit_number(&self, number: &str) -> Reply {
        self.try_step(
            "submitPhoneNumber(input: $input)",
            "($input: PhoneNumberInput!)",
            json!({ "input": { "phoneNumber": number, "codeMethod": "SMS" } }),
        )
        .await
    }

    /// A live sandbox number (the project's delay must be zero).
    async fn go_live(&self, number: &str) -> Value {
        self.complete_checklist().await;
        self.start().await;
        self.up_to_phone_number(None).await;
        self.submit_number(number).await.data();
        self.step(
            "verifyPhoneNumber(code: $code)",
            "($code: String!)",
            json!({ "code": "123456" }),
        )
        .await;
        let live = self
            .step(
                "registerPhoneNumber(pin: $pin)",
                "($pin: String!)",
                json!({ "pin": "246810" }),
            )
            .await;
        assert_eq!(live["status"], "LIVE", "{live}");
        live
    }
}

fn complete_checklist() -> Value {
    json!({
        "legalName": "Acme Retail Private Limited",
        "businessType": "BUSINESS",
        "industry": "retail",
        "hasBusinessManager": true,
        "businessManagerVerified": true,
        "websiteUrl": "https://www.acme-shoes.example",
        "websiteBusinessNameInHeader": true,
        "websiteRegisteredNameInFooter": true,
        "websiteTermsAndConditions": true,
        "websitePrivacyPolicy": true,
        "websiteContactDetails": true,
        "websiteSocialLinks": true,
        "businessEmail": "hello@acme-shoes.example",
        "numberNotOnWhatsapp": true,
        "numberReceivesCodes": true,
    })
}

fn trail(application: &Value) -> Vec<Value> {
    application["auditTrail"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn outcomes(application: &Value) -> Vec<String> {
    trail(application)
        .iter()
        .map(|n| {
            format!(
                "{}:{}",
                n["action"].as_str().unwrap(),
                n["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

fn problem_codes(reply: &Reply) -> Vec<String> {
    reply.body["errors"][0]["extensions"]["problems"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| p["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_checklist_says_what_is_missing_and_restricted_industries_cannot_apply() {
    let p = Project::sandbox("Checklist", Duration::ZERO).await;
    let empty = p
        .data(
            "{ onboardingChecklist { ready missing items { key status required why } } }",
            json!({}),
        )
        .await["onboardingChecklist"]
        .clone();
    assert_eq!(empty["ready"], false);
    let missing: Vec<&str> = empty["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for key in [
        "BUSINESS_MANAGER",
        "WEBSITE",
        "WEBSITE_TERMS",
        "WEBSITE_PRIVACY_POLICY",
        "DOMAIN_EMAIL",
        "FRESH_NUMBER",
        "INDUSTRY",
    ] {
        assert!(missing.contains(&key), "{key} in {missing:?}");
    }
    // Verification is recommended, not required; every item says why it matters.
    assert!(!missing.contains(&"BUSINESS_MANAGER_VERIFIED"));
    for item in empty["items"].as_array().unwrap() {
        assert!(!item["why"].as_str().unwrap().is_empty(), "{item}");
    }

    // An industry must be declared before applying.
    let refused = p.try_step("startOnboarding", "", json!({})).await;
    refused.expect_error("NOT_ELIGIBLE");

    // The email must be on the website's domain.
    let mut answers = complete_checklist();
    answers["businessEmail"] = "acme.shoes@gmail.com".into();
    let checklist = p.checklist(answers).await;
    assert_eq!(checklist["missing"], json!(["DOMAIN_EMAIL"]));
    let email = checklist["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "DOMAIN_EMAIL")
        .unwrap()
        .clone();
    assert!(
        email["detail"].as_str().unwrap().contains("gmail.com"),
        "{email}"
    );

    // Only what is given changes.
    let checklist = p
        .checklist(json!({ "businessEmail": "hello@acme-shoes.example" }))
        .await;
    assert_eq!(checklist["ready"], true, "{checklist}");

    // Bad values are refused with the field.
    let reply = p
        .send(
            &p.owner,
            "mutation { updateOnboardingChecklist(input: { websiteUrl: \"ftp://acme\" }) { ready } }",
            json!({}),
        )
        .await;
    reply.expect_error("BAD_USER_INPUT");
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "websiteUrl");

    // A restricted industry blocks the application.
    let checklist = p.checklist(json!({ "industry": "Alcohol" })).await;
    assert_eq!(checklist["ready"], false);
    assert!(
        checklist["blockedReason"]
            .as_str()
            .unwrap()
            .contains("restricted industry"),
        "{checklist}"
    );
    let refused = p.try_step("startOnboarding", "", json!({})).await;
    let message = refused.expect_error("NOT_ELIGIBLE");
    assert!(message.contains("Alcohol"), "{message}");
    assert_eq!(
        refused.body["errors"][0]["extensions"]["reasons"][0]["code"],
        "INDUSTRY"
    );
    let industries = p
        .data("{ restrictedIndustries { key label } }", json!({}))
        .await;
    assert!(
        industries["restrictedIndustries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["key"] == "alcohol")
    );
}

#[tokio::test]
async fn number_and_display_name_rules_are_checked_before_submission() {
    // The unreachable countries are the server's setting: here the United Kingdom too.
    let shared = Shared::fresh(&Mode::Production).await;
    let app = TestApp::spawn_with(Mode::Production, &shared, |s| {
        s.unreachable =
            parley_api::contacts::phone::Unreachable::parse("53=Cuba,98=Iran,44=United Kingdom")
                .unwrap();
        s.onboarding.restricted_industries =
            parley_api::onboarding::rules::RestrictedIndustries::parse("crypto=Crypto exchanges")
                .unwrap();
    })
    .await;
    let owner = app.sign_up("Rules").await;
    let check = |number: &str, ivr: bool| {
        let app = &app;
        let owner = &owner;
        let number = number.to_owned();
        async move {
            app.gql(
                "query($n: String!, $ivr: Boolean!) { checkPhoneNumber(phoneNumber: $n, behindIvr: $ivr) {
                   allowed phoneNumber country kind problems { path code message } guidance { code } } }",
            )
            .as_member(owner)
            .vars(json!({ "n": number, "ivr": ivr }))
            .data()
            .await["checkPhoneNumber"]
                .clone()
        }
    };
    let codes = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap().to_owned())
            .collect()
    };

    let ok = check(NUMBER, false).await;
    assert_eq!(ok["allowed"], true, "{ok}");
    assert_eq!(ok["phoneNumber"], NUMBER_E164);
    assert_eq!(ok["kind"], "MOBILE");
    assert!(codes(&ok, "guidance").contains(&"NOT_ON_WHATSAPP_APP".to_owned()));

    let uk = check("+44 7400 123456", false).await;
    assert_eq!(uk["allowed"], false);
    assert_eq!(codes(&uk, "problems"), ["UNREACHABLE_COUNTRY"]);
    assert!(
        uk["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("United Kingdom")
    );
    // Syria is not in this server's list.
    assert_eq!(check("+963 944 567 890", false).await["allowed"], true);

    let short = check("56161", false).await;
    assert_eq!(codes(&short, "problems"), ["SHORT_CODE"]);

    let toll_free = check("+1 800 253 0000", true).await;
    assert_eq!(toll_free["allowed"], true, "{toll_free}");
    assert_eq!(toll_free["kind"], "TOLL_FREE");
    assert!(codes(&toll_free, "guidance").contains(&"TOLL_FREE".to_owned()));
    let ivr = check(OTHER_NUMBER, true).await;
    assert!(codes(&ivr, "guidance").contains(&"IVR".to_owned()));

    let names = app
        .gql(
            "{ good: checkDisplayName(displayName: \"Acme Shoes\") { allowed problems { code } }
               bad: checkDisplayName(displayName: \"BEST WHATSAPP DEALS 🔥 WWW.DEALS.COM\") {
                 allowed problems { path code message } } }",
        )
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(names["good"]["allowed"], true, "{names}");
    assert_eq!(names["bad"]["allowed"], false);
    let bad = codes(&names["bad"], "problems");
    for code in ["EMOJI", "MENTIONS_WHATSAPP", "URL", "ALL_CAPS"] {
        assert!(bad.contains(&code.to_owned()), "{code} in {bad:?}");
    }
    assert_eq!(names["bad"]["problems"][0]["path"], "displayName");

    // The restricted industries are the server's setting as well.
    let industries = app
        .gql("{ restrictedIndustries { key label } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(
        industries["restrictedIndustries"],
        json!([{ "key": "crypto", "label": "Crypto exchanges" }])
    );
}

#[tokio::test]
async fn the_embedded_sign_up_goes_live_through_metas_endpoints() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = app.sign_up("Metasignup").await;
    let p = Project {
        app,
        owner,
        clock: Clock::default(),
    };
    p.complete_checklist().await;
    let started = p.start().await;
    assert_eq!(started["provider"], "META");
    assert_eq!(started["step"], "CONNECT_ACCOUNT");
    assert_eq!(started["status"], "IN_PROGRESS");
    // One open application per project.
    p.try_step("startOnboarding", "", json!({}))
        .await
        .expect_error("CONFLICT");
    // Steps come in order.
    let early = p
        .try_step(
            "verifyPhoneNumber(code: $code)",
            "($code: String!)",
            json!({ "code": "123456" }),
        )
        .await;
    early.expect_error("ONBOARDING_WRONG_STEP");
    assert_eq!(
        early.body["errors"][0]["extensions"]["currentStep"],
        "CONNECT_ACCOUNT"
    );

    // 1. The login's code is exchanged with the app's id and secret.
    let connected = p
        .step(
            "connectFacebookAccount(code: $code)",
            "($code: String!)",
            json!({ "code": "AQDxLoginCode" }),
        )
        .await;
    assert_eq!(connected["step"], "BUSINESS_MANAGER");
    assert_eq!(connected["hasAccessToken"], true);
    let exchange = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v23.0/oauth/access_token")
        .expect("the code exchange");
    assert_eq!(exchange.method, "GET");
    assert!(
        exchange.query.contains("client_id=1234"),
        "{}",
        exchange.query
    );
    assert!(exchange.query.contains("client_secret=test-app-secret"));
    assert!(exchange.query.contains("code=AQDxLoginCode"));

    // 2-4, with their inputs validated (and refusals on the trail).
    p.step(
        "selectBusinessManager(input: $input)",
        "($input: BusinessManagerInput!)",
        json!({ "input": { "businessManagerId": "880011223344", "name": "Acme Group" } }),
    )
    .await;
    let no_waba = p
        .try_step(
            "setWhatsappBusinessAccount(input: $input)",
            "($input: WhatsAppBusinessAccountInput!)",
            json!({ "input": { "name": "Acme WABA", "timezone": "Asia/Kolkata" } }),
        )
        .await;
    no_waba.expect_error("BAD_USER_INPUT");
    assert_eq!(no_waba.body["errors"][0]["extensions"]["field"], "wabaId");
    let bad_zone = p
        .try_step(
            "setWhatsappBusinessAccount(input: $input)",
            "($input: WhatsAppBusinessAccountInput!)",
            json!({ "input": { "wabaId": "102290129340398", "name": "Acme WABA", "timezone": "Mars/Olympus Mons" } }),
        )
        .await;
    assert_eq!(
        bad_zone.body["errors"][0]["extensions"]["field"], "timezone",
        "{}",
        bad_zone.body
    );
    p.step(
        "setWhatsappBusinessAccount(input: $input)",
        "($input: WhatsAppBusinessAccountInput!)",
        json!({ "input": { "wabaId": "102290129340398", "name": "Acme WABA", "timezone": "Asia/Kolkata" } }),
    )
    .await;
    let bad_name = p
        .try_step(
            "setBusinessProfile(input: $input)",
            "($input: BusinessProfileInput!)",
            json!({ "input": { "displayName": "WhatsApp Shop!!", "category": "RETAIL" } }),
        )
        .await;
    bad_name.expect_error("BAD_USER_INPUT");
    let codes = problem_codes(&bad_name);
    assert!(codes.contains(&"MENTIONS_WHATSAPP".to_owned()), "{codes:?}");
    assert!(
        codes.contains(&"SPECIAL_CHARACTERS".to_owned()),
        "{codes:?}"
    );
    let profile = p
        .step(
            "setBusinessProfile(input: $input)",
            "($input: BusinessProfileInput!)",
            json!({ "input": { "displayName": "Acme Shoes", "category": "RETAIL",
                               "description": "Shoes for every day" } }),
        )
        .await;
    assert_eq!(profile["step"], "PHONE_NUMBER");

    // 5. The number rules first, then Meta adds the number and sends its code.
    let cuba = p.submit_number("+53 5 1234567").await;
    cuba.expect_error("BAD_USER_INPUT");
    assert_eq!(problem_codes(&cuba), ["UNREACHABLE_COUNTRY"]);
    let code_sent = p.submit_number(NUMBER).await.data()["submitPhoneNumber"].clone();
    assert_eq!(code_sent["step"], "CODE_SENT", "{code_sent}");
    assert_eq!(code_sent["phoneNumber"], NUMBER_E164);
    let phone_number_id = code_sent["phoneNumberId"].as_str().unwrap().to_owned();
    let requests = fake.requests();
    let added = requests
        .iter()
        .find(|r| r.path == "/v23.0/102290129340398/phone_numbers")
        .expect("the number added to the account");
    assert_eq!(
        added.body,
        json!({ "cc": "91", "phone_number": "9812345678", "verified_name": "Acme Shoes" })
    );
    let token = format!("Bearer {ACCESS_TOKEN_PREFIX}AQDxLoginCode");
    assert_eq!(added.authorization.as_deref(), Some(token.as_str()));
    let request_code = requests
        .iter()
        .find(|r| r.path == format!("/v23.0/{phone_number_id}/request_code"))
        .expect("the code requested");
    assert_eq!(
        request_code.body,
        json!({ "code_method": "SMS", "language": "en_US" })
    );

    // 6. Meta refuses a wrong code: the step fails with the reason and is retried.
    fake.fail_next(
        "verify_code",
        400,
        meta_error(136025, "Verification code mismatch"),
    );
    let failed = p
        .step(
            "verifyPhoneNumber(code: $code)",
            "($code: String!)",
            json!({ "code": "111-111" }),
        )
        .await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["step"], "CODE_SENT");
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["failure"]["code"], "PROVIDER_REJECTED");
    assert_eq!(failed["failure"]["retryable"], false);
    assert!(
        failed["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("Verification code mismatch (Meta error 136025)"),
        "{failed}"
    );
    let malformed = p
        .try_step(
            "verifyPhoneNumber(code: $code)",
            "($code: String!)",
            json!({ "code": "12ab" }),
        )
        .await;
    malformed.expect_error("BAD_USER_INPUT");
    let verified = p
        .step(
            "verifyPhoneNumber(code: $code)",
            "($code: String!)",
            json!({ "code": "424242" }),
        )
        .await;
    assert_eq!(verified["step"], "VERIFIED");
    assert_eq!(verified["status"], "IN_PROGRESS");
    assert_eq!(verified["failure"], Value::Null);
    let verify_bodies: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/verify_code"))
        .map(|r| r.body)
        .collect();
    assert_eq!(
        verify_bodies,
        [json!({ "code": "111111" }), json!({ "code": "424242" })]
    );

    // 7. Registered with the two-step PIN, the profile set: live, the number locked.
    let live = p
        .step(
            "registerPhoneNumber(pin: $pin)",
            "($pin: String!)",
            json!({ "pin": "135790" }),
        )
        .await;
    assert_eq!(live["step"], "LIVE", "{live}");
    assert_eq!(live["status"], "LIVE");
    assert_eq!(live["numberLocked"], true);
    assert_eq!(live["twoStepVerification"], true);
    assert!(
        live["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["done"] == true)
    );
    let requests = fake.requests();
    let register = requests
        .iter()
        .find(|r| r.path == format!("/v23.0/{phone_number_id}/register"))
        .expect("the number registered");
    assert_eq!(
        register.body,
        json!({ "messaging_product": "whatsapp", "pin": "135790" })
    );
    let profile = requests
        .iter()
        .find(|r| r.path == format!("/v23.0/{phone_number_id}/whatsapp_business_profile"))
        .expect("the business profile set");
    assert_eq!(profile.body["vertical"], "RETAIL");
    assert_eq!(profile.body["description"], "Shoes for every day");

    // The project now sends from the number through Meta.
    let account = p
        .data(
            "{ whatsappAccount { provider wabaId phoneNumberId displayPhoneNumber hasAccessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(
        account["whatsappAccount"],
        json!({ "provider": "meta", "wabaId": "102290129340398",
                "phoneNumberId": phone_number_id, "displayPhoneNumber": NUMBER_E164,
                "hasAccessToken": true })
    );

    // Changing a live number needs a new application.
    let locked = p.submit_number(OTHER_NUMBER).await;
    let message = locked.expect_error("NUMBER_LOCKED");
    assert!(message.contains("new application"), "{message}");

    // The audit trail: who, when, which step, how it went, without secrets.
    let current = p.current().await;
    let got = outcomes(&current);
    for expected in [
        "START:SUCCEEDED",
        "CONNECT_ACCOUNT:SUCCEEDED",
        "SET_WHATSAPP_ACCOUNT:REJECTED",
        "SET_BUSINESS_PROFILE:REJECTED",
        "SUBMIT_PHONE_NUMBER:REJECTED",
        "SUBMIT_PHONE_NUMBER:SUCCEEDED",
        "VERIFY_CODE:FAILED",
        "VERIFY_CODE:REJECTED",
        "VERIFY_CODE:SUCCEEDED",
        "REGISTER:SUCCEEDED",
    ] {
        assert!(got.contains(&expected.to_owned()), "{expected} in {got:?}");
    }
    let rows = trail(&current);
    assert!(
        rows.iter().all(|r| r["actorId"] == p.owner.user_id),
        "{rows:?}"
    );
    let text = serde_json::to_string(&rows).unwrap();
    assert!(
        !text.contains("135790") && !text.contains("424242"),
        "{text}"
    );
    assert!(!text.contains(ACCESS_TOKEN_PREFIX), "{text}");
    let failed_row = rows
        .iter()
        .find(|r| r["action"] == "VERIFY_CODE" && r["outcome"] == "FAILED")
        .unwrap();
    assert!(failed_row["reason"].as_str().unwrap().contains("mismatch"));

    // Downgrading through Meta deregisters the number.
    let downgrade = p
        .send(
            &p.owner,
            "mutation($input: DowngradeInput!) { requestDowngrade(input: $input) { status } }",
            json!({ "input": { "confirmPhoneNumber": NUMBER, "acknowledgeDataDeletion": true } }),
        )
        .await;
    assert_eq!(downgrade.data()["requestDowngrade"]["status"], "REQUESTED");
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path == format!("/v23.0/{phone_number_id}/deregister"))
    );
}

#[tokio::test]
async fn the_sandbox_signs_up_with_delays_and_failures() {
    let p = Project::sandbox("Sandboxsignup", Duration::from_secs(60)).await;
    p.complete_checklist().await;
    let started = p.start().await;
    assert_eq!(started["provider"], "SANDBOX");

    // A refused Facebook login fails after the sandbox's delay.
    let pending = p
        .step(
            "connectFacebookAccount(code: $code)",
            "($code: String!)",
            json!({ "code": "test_denied" }),
        )
        .await;
    assert_eq!(pending["status"], "PROCESSING");
    assert!(pending["processingUntil"].is_string());
    // Nothing else while it is processed.
    p.try_step(
        "connectFacebookAccount(code: $code)",
        "($code: String!)",
        json!({ "code": "again" }),
    )
    .await
    .expect_error("ONBOARDING_WRONG_STEP");
    p.clock.advance(Duration::from_secs(30));
    assert_eq!(p.current().await["status"], "PROCESSING");
    p.clock.advance(Duration::from_secs(31));
    let failed = p.current().await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["step"], "CONNECT_ACCOUNT");
    assert!(
        failed["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    // The answer arrived from the sandbox, not from a member.
    let settled = trail(&failed)
        .into_iter()
        .find(|r| r["action"] == "CONNECT_ACCOUNT" && r["outcome"] == "FAILED")
        .expect("the failure on the trail");
    assert_eq!(settled["actorId"], Value::Null);

    // Retried with a good login, then the next steps.
    p.step(
        "connectFacebookAccount(code: $code)",
        "($code: String!)",
        json!({ "code": "login-code-2" }),
    )
    .await;
    p.clock.advance(Duration::from_secs(61));
    let connected = p.current().await;
    assert_eq!(connected["step"], "BUSINESS_MANAGER", "{connected}");
    assert_eq!(connected["attempts"], 0);
    let steps = [
        (
            "selectBusinessManager(input: $input)",
            "($input: BusinessManagerInput!)",
            json!({ "input": { "businessManagerId": "880011223344", "name": "Acme Group" } }),
            "WHATSAPP_ACCOUNT",
        ),
        (
            "setWhatsappBusinessAccount(input: $input)",
            "($input: WhatsAppBusinessAccountInput!)",
            json!({ "input": { "name": "Acme WABA", "timezone": "UTC+05:30" } }),
            "BUSINESS_PROFILE",
        ),
        (
            "setBusinessProfile(input: $input)",
            "($input: BusinessProfileInput!)",
            json!({ "input": { "displayName": "Acme Shoes", "category": "RETAIL" } }),
            "PHONE_NUMBER",
        ),
    ];
    for (mutation, args, vars, next) in steps {
        assert_eq!(p.step(mutation, args, vars).await["status"], "PROCESSING");
        p.clock.advance(Duration::from_secs(61));
        assert_eq!(p.current().await["step"], next);
    }

    // A number ending in 0000 never receives its code.
    p.submit_number("+91 98123 40000").await.data();
    p.clock.advance(Duration::from_secs(61));
    let undelivered = p.current().await;
    assert_eq!(undelivered["status"], "FAILED", "{undelivered}");
    assert_eq!(undelivered["step"], "PHONE_NUMBER");
    assert!(
        undelivered["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("could not be delivered")
    );
    // Another number works; a wrong code does not; 123456 does.
    p.submit_number(NUMBER).await.data();
    p.clock.advance(Duration::from_secs(61));
    let sent = p.current().await;
    assert_eq!(sent["step"], "CODE_SENT", "{sent}");
    assert_eq!(sent["phoneNumber"], NUMBER_E164);
    p.step(
        "verifyPhoneNumber(code: $code)",
        "($code: String!)",
        json!({ "code": "654321" }),
    )
    .await;
    p.clock.advance(Duration::from_secs(61));
    let wrong = p.current().await;
    assert_eq!(wrong["status"], "FAILED");
    assert!(
        wrong["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("incorrect")
    );
    assert_eq!(wrong["attempts"], 1);
    p.step("resendVerificationCode(codeMethod: VOICE)", "", json!({}))
        .await;
    p.clock.advance(Duration::from_secs(61));
    let resent = p.current().await;
    assert_eq!(resent["codeMethod"], "VOICE", "{resent}");
    assert_eq!(resent["status"], "IN_PROGRESS");
    p.step(
        "verifyPhoneNumber(code: $code)",
        "($code: String!)",
        json!({ "code": "123456" }),
    )
    .await;
    p.clock.advance(Duration::from_secs(61));
    assert_eq!(p.current().await["step"], "VERIFIED");
    p.step(
        "registerPhoneNumber(pin: $pin)",
        "($pin: String!)",
        json!({ "pin": "246810" }),
    )
    .await;
    p.clock.advance(Duration::from_secs(61));
    let live = p.current().await;
    assert_eq!(live["status"], "LIVE", "{live}");
    assert_eq!(live["numberLocked"], true);
    let got = outcomes(&live);
    assert_eq!(
        got.iter().filter(|o| o.ends_with(":PENDING")).count(),
        11,
        "{got:?}"
    );
    assert!(got.contains(&"SUBMIT_PHONE_NUMBER:FAILED".to_owned()));
    assert!(got.contains(&"REGISTER:SUCCEEDED".to_owned()));

    // The sandbox account now shows the registered number.
    let account = p
        .data(
            "{ whatsappAccount { provider displayPhoneNumber } }",
            json!({}),
        )
        .await;
    assert_eq!(
        account["whatsappAccount"],
        json!({ "provider": "sandbox", "displayPhoneNumber": NUMBER_E164 })
    );

    // A new application for another number replaces the live one when it goes live.
    let second = p.start().await;
    assert_eq!(second["step"], "CONNECT_ACCOUNT");
    let list = p
        .data(
            "{ onboardingApplications(first: 10) { edges { node { status phoneNumber } } } }",
            json!({}),
        )
        .await;
    let statuses: Vec<&str> = list["onboardingApplications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["LIVE", "IN_PROGRESS"]);
    let cancelled = p.step("cancelOnboarding", "", json!({})).await;
    assert_eq!(cancelled["status"], "CANCELLED");
}

#[tokio::test]
async fn the_embedded_default_goes_live_on_the_sandbox() {
    let p = Project::sandbox_in(Mode::Embedded, "Embedded", Duration::ZERO).await;
    let live = p.go_live(NUMBER).await;
    assert_eq!(live["numberLocked"], true);
    let current = p.current().await;
    assert_eq!(current["id"], live["id"]);
    assert!(outcomes(&current).contains(&"REGISTER:SUCCEEDED".to_owned()));
    p.submit_number(OTHER_NUMBER)
        .await
        .expect_error("NUMBER_LOCKED");
    let eligibility = p.data(ELIGIBILITY, json!({})).await;
    assert_eq!(failing(&eligibility), ["NOTABLE_BRAND"]);
}

#[tokio::test]
async fn roles_and_tenants_are_kept_apart() {
    let p = Project::sandbox("TenantA", Duration::ZERO).await;
    let (manager, _) = p.app.add_member(&p.owner, "MANAGER").await;
    let (agent, _) = p.app.add_member(&p.owner, "AGENT").await;
    let (finance, _) = p.app.add_member(&p.owner, "FINANCE").await;

    // Managers keep the checklist and read; only the owner drives the sign-up.
    let reply = p
        .send(
            &manager,
            "mutation { updateOnboardingChecklist(input: { legalName: \"Acme Retail\" }) { ready } }",
            json!({}),
        )
        .await;
    reply.data();
    p.send(&manager, "mutation { startOnboarding { id } }", json!({}))
        .await
        .expect_error("FORBIDDEN");
    for who in [&agent, &finance] {
        p.send(who, "{ onboardingChecklist { ready } }", json!({}))
            .await
            .expect_error("FORBIDDEN");
        p.send(who, "{ onboarding { id } }", json!({}))
            .await
            .expect_error("FORBIDDEN");
        p.send(
            who,
            "{ chatButton(input: { phoneNumber: \"+919812345678\" }) { link } }",
            json!({}),
        )
        .await
        .expect_error("FORBIDDEN");
    }

    let live = p.go_live(NUMBER).await;
    let id = live["id"].as_str().unwrap().to_owned();
    let seen = p
        .send(&manager, "{ onboarding { id status } }", json!({}))
        .await;
    assert_eq!(seen.data()["onboarding"]["id"], id.as_str());

    // Project B sees nothing of A's, and cannot take its number.
    let b = p.app.sign_up("TenantB").await;
    let reply = p
        .send(
            &b,
            "query($id: ID!) { onboardingApplication(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    reply.expect_error("NOT_FOUND");
    let none = p.send(&b, "{ onboarding { id } }", json!({})).await;
    assert_eq!(none.data()["onboarding"], Value::Null);
    let checklist = p
        .send(
            &b,
            "mutation($input: OnboardingChecklistInput!) { updateOnboardingChecklist(input: $input) { ready } }",
            json!({ "input": complete_checklist() }),
        )
        .await;
    checklist.data();
    p.send(&b, "mutation { startOnboarding { id } }", json!({}))
        .await
        .data();
    let b_steps = [
        (
            "connectFacebookAccount(code: \"b-login\") { step }",
            "BUSINESS_MANAGER",
        ),
        (
            "selectBusinessManager(input: { businessManagerId: \"99\", name: \"B\" }) { step }",
            "WHATSAPP_ACCOUNT",
        ),
        (
            "setWhatsappBusinessAccount(input: { name: \"B\", timezone: \"UTC\" }) { step }",
            "BUSINESS_PROFILE",
        ),
        (
            "setBusinessProfile(input: { displayName: \"Acme Boots\", category: \"RETAIL\" }) { step }",
            "PHONE_NUMBER",
        ),
    ];
    for (mutation, next) in b_steps {
        let reply = p
            .send(&b, &format!("mutation {{ {mutation} }}"), json!({}))
            .await;
        let data = reply.data();
        let step = data.as_object().unwrap().values().next().unwrap()["step"].clone();
        assert_eq!(step, next);
    }
    let taken = p
        .send(
            &b,
            "mutation { submitPhoneNumber(input: { phoneNumber: \"+919812345678\" }) { step } }",
            json!({}),
        )
        .await;
    let message = taken.expect_error("CONFLICT");
    assert!(
        message.contains("one number serves one API client"),
        "{message}"
    );
    // A's green tick and leaving requests are not B's either.
    let b_eligibility = p
        .send(
            &b,
            "{ greenTickEligibility { eligible } leavingRequests { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        b_eligibility.data()["greenTickEligibility"]["eligible"],
        false
    );
    assert_eq!(b_eligibility.data()["leavingRequests"], json!([]));
}

const ELIGIBILITY: &str =
    "{ greenTickEligibility { eligible availableAt criteria { key required met reason } } }";

fn failing(eligibility: &Value) -> Vec<String> {
    eligibility["greenTickEligibility"]["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["met"] == false)
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn green_tick_eligibility_applications_and_the_wait_after_a_rejection() {
    let p = Project::sandbox("Greentick", Duration::ZERO).await;
    let before = p.data(ELIGIBILITY, json!({})).await;
    assert_eq!(before["greenTickEligibility"]["eligible"], false);
    let missing = failing(&before);
    for key in [
        "LIVE_ACCOUNT",
        "TWO_STEP_VERIFICATION",
        "BUSINESS_MANAGER_VERIFIED",
        "BUSINESS_NOT_INDIVIDUAL",
        "NOTABLE_BRAND",
    ] {
        assert!(missing.contains(&key.to_owned()), "{key} in {missing:?}");
    }
    for c in before["greenTickEligibility"]["criteria"]
        .as_array()
        .unwrap()
    {
        if c["met"] == false {
            assert!(c["reason"].is_string(), "{c}");
        }
    }
    let refused = p
        .send(&p.owner, "mutation { applyForGreenTick { id } }", json!({}))
        .await;
    refused.expect_error("NOT_ELIGIBLE");
    let reasons = refused.body["errors"][0]["extensions"]["reasons"]
        .as_array()
        .unwrap()
        .clone();
    assert!(reasons.iter().any(|r| r["code"] == "LIVE_ACCOUNT"));

    p.go_live(NUMBER).await;
    // Individuals cannot have it; paid PR does not count.
    p.checklist(json!({
        "businessType": "INDIVIDUAL",
        "articles": [
            { "url": "https://news.example/acme-1", "publisher": "Daily News" },
            { "url": "https://news.example/acme-2" },
            { "url": "https://press.example/acme-paid", "paid": true },
        ],
    }))
    .await;
    let not_yet = p.data(ELIGIBILITY, json!({})).await;
    assert_eq!(
        failing(&not_yet),
        ["BUSINESS_NOT_INDIVIDUAL", "NOTABLE_BRAND"]
    );
    let notable = not_yet["greenTickEligibility"]["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "NOTABLE_BRAND")
        .unwrap()
        .clone();
    assert!(
        notable["reason"].as_str().unwrap().contains("2 listed"),
        "{notable}"
    );

    p.checklist(json!({
        "businessType": "BUSINESS",
        "articles": [
            { "url": "https://news.example/acme-1" },
            { "url": "https://news.example/acme-2" },
            { "url": "https://magazine.example/acme" },
        ],
    }))
    .await;
    let eligible = p.data(ELIGIBILITY, json!({})).await;
    assert_eq!(
        eligible["greenTickEligibility"]["eligible"], true,
        "{eligible}"
    );

    let application = p
        .data(
            "mutation { applyForGreenTick { id status criteria { key met } } }",
            json!({}),
        )
        .await["applyForGreenTick"]
        .clone();
    assert_eq!(application["status"], "SUBMITTED");
    let id = application["id"].as_str().unwrap().to_owned();
    // One at a time.
    p.send(&p.owner, "mutation { applyForGreenTick { id } }", json!({}))
        .await
        .expect_error("NOT_ELIGIBLE");
    // A rejection is recorded with WhatsApp's reason.
    p.send(
        &p.owner,
        "mutation($id: ID!) { recordGreenTickDecision(id: $id, approved: false) { status } }",
        json!({ "id": id }),
    )
    .await
    .expect_error("BAD_USER_INPUT");
    let rejected = p
        .data(
            "mutation($id: ID!) { recordGreenTickDecision(id: $id, approved: false,
               reason: \"Not enough press coverage\") { status decisionReason reapplyFrom } }",
            json!({ "id": id }),
        )
        .await["recordGreenTickDecision"]
        .clone();
    assert_eq!(rejected["status"], "REJECTED");
    assert!(rejected["reapplyFrom"].is_string());

    // 30 days to wait.
    let waiting = p
        .send(&p.owner, "mutation { applyForGreenTick { id } }", json!({}))
        .await;
    waiting.expect_error("NOT_ELIGIBLE");
    let extensions = &waiting.body["errors"][0]["extensions"];
    assert_eq!(extensions["reasons"][0]["code"], "WAIT_AFTER_REJECTION");
    assert_eq!(extensions["availableAt"], rejected["reapplyFrom"]);
    p.clock.advance(Duration::from_secs(29 * 24 * 3600));
    assert_eq!(
        failing(&p.data(ELIGIBILITY, json!({})).await),
        ["WAIT_AFTER_REJECTION"]
    );
    p.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let second = p
        .data("mutation { applyForGreenTick { id } }", json!({}))
        .await["applyForGreenTick"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = p
        .data(
            "mutation($id: ID!) { recordGreenTickDecision(id: $id, approved: true) { status } }",
            json!({ "id": second }),
        )
        .await;
    assert_eq!(approved["recordGreenTickDecision"]["status"], "APPROVED");

    // The green tick goes with a downgrade.
    p.data(
        "mutation($input: DowngradeInput!) { requestDowngrade(input: $input) { id } }",
        json!({ "input": { "confirmPhoneNumber": NUMBER_E164, "acknowledgeDataDeletion": true } }),
    )
    .await;
    let applications = p
        .data("{ greenTickApplications { status revokedAt } }", json!({}))
        .await;
    assert_eq!(
        applications["greenTickApplications"][0]["status"],
        "REVOKED"
    );
    assert_eq!(
        applications["greenTickApplications"][1]["status"],
        "REJECTED"
    );
    let after = p.data(ELIGIBILITY, json!({})).await;
    assert!(failing(&after).contains(&"LIVE_ACCOUNT".to_owned()));
}

#[tokio::test]
async fn leaving_downgrade_two_step_verification_and_the_plan() {
    let p = Project::sandbox("Leaving", Duration::ZERO).await;
    p.go_live(NUMBER).await;
    let guidance = |goal: &'static str| {
        let p = &p;
        async move {
            p.data(
                "query($goal: LeavingGoal!) { leavingGuidance(goal: $goal) {
                   steps { key status detail action } notes } }",
                json!({ "goal": goal }),
            )
            .await["leavingGuidance"]
                .clone()
        }
    };
    let to_app = guidance("WHATSAPP_APP").await;
    assert_eq!(to_app["steps"][0]["key"], "DOWNGRADE_NUMBER");
    assert_eq!(to_app["steps"][0]["status"], "TODO");
    assert_eq!(to_app["steps"][1]["key"], "CANCEL_PLAN");
    // A free trial ends by itself.
    assert_eq!(to_app["steps"][1]["status"], "NOT_NEEDED", "{to_app}");
    assert!(
        to_app["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("no refunds"))
    );

    // Moving to another provider: two-step verification off.
    let to_provider = guidance("ANOTHER_PROVIDER").await;
    assert_eq!(
        to_provider["steps"][0]["key"],
        "DISABLE_TWO_STEP_VERIFICATION"
    );
    assert_eq!(to_provider["steps"][0]["status"], "TODO");
    let request = p
        .data(
            "mutation { requestTwoStepVerificationDisable(input: { newProvider: \"Other BSP\" }) {
               id kind status newProvider } }",
            json!({}),
        )
        .await["requestTwoStepVerificationDisable"]
        .clone();
    assert_eq!(request["kind"], "TWO_STEP_DISABLE");
    // The sandbox carries it out (after its delay, zero here).
    let requests = p
        .data("{ leavingRequests { kind status completedAt } }", json!({}))
        .await;
    assert_eq!(requests["leavingRequests"][0]["status"], "COMPLETED");
    assert_eq!(
        guidance("ANOTHER_PROVIDER").await["steps"][0]["status"],
        "DONE"
    );
    assert_eq!(p.current().await["twoStepVerification"], false);

    // The downgrade is confirmed explicitly.
    let downgrade = "mutation($input: DowngradeInput!) { requestDowngrade(input: $input) {
        id kind status phoneNumber requestedAt earliestCompletionAt latestCompletionAt
        dataDeletion { contacts messages templates campaigns } } }";
    let wrong = p
        .send(
            &p.owner,
            downgrade,
            json!({ "input": { "confirmPhoneNumber": OTHER_NUMBER, "acknowledgeDataDeletion": true } }),
        )
        .await;
    wrong.expect_error("BAD_USER_INPUT");
    assert_eq!(
        wrong.body["errors"][0]["extensions"]["field"],
        "confirmPhoneNumber"
    );
    let unacknowledged = p
        .send(
            &p.owner,
            downgrade,
            json!({ "input": { "confirmPhoneNumber": NUMBER, "acknowledgeDataDeletion": false } }),
        )
        .await;
    unacknowledged.expect_error("BAD_USER_INPUT");
    assert_eq!(
        unacknowledged.body["errors"][0]["extensions"]["field"],
        "acknowledgeDataDeletion"
    );
    // Some data the downgrade would delete.
    p.data(
        "mutation { createContact(input: { name: \"Asha\", phone: \"+919812300001\" }) { id } }",
        json!({}),
    )
    .await;
    let requested = p
        .data(
            downgrade,
            json!({ "input": { "confirmPhoneNumber": "+91 98123-45678", "acknowledgeDataDeletion": true } }),
        )
        .await["requestDowngrade"]
        .clone();
    assert_eq!(requested["status"], "REQUESTED");
    assert_eq!(requested["dataDeletion"]["contacts"], 1);
    let at =
        |key: &str| chrono::DateTime::parse_from_rfc3339(requested[key].as_str().unwrap()).unwrap();
    assert_eq!(
        (at("earliestCompletionAt") - at("requestedAt")).num_hours(),
        24
    );
    assert_eq!(
        (at("latestCompletionAt") - at("requestedAt")).num_days(),
        30
    );
    let id = requested["id"].as_str().unwrap().to_owned();
    p.send(
        &p.owner,
        "mutation($id: ID!) { cancelLeavingRequest(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await
    .expect_error("CONFLICT");
    let early = p
        .send(
            &p.owner,
            "mutation($id: ID!) { completeLeavingRequest(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    let message = early.expect_error("CONFLICT");
    assert!(message.contains("24 hours"), "{message}");
    assert_eq!(
        guidance("WHATSAPP_APP").await["steps"][0]["status"],
        "IN_PROGRESS"
    );

    // A day later the sandbox has downgraded the number.
    p.clock.advance(Duration::from_secs(25 * 3600));
    let done = p
        .data("{ leavingRequests { kind status completedAt } }", json!({}))
        .await;
    assert_eq!(done["leavingRequests"][0]["kind"], "DOWNGRADE");
    assert_eq!(done["leavingRequests"][0]["status"], "COMPLETED");
    assert_eq!(guidance("WHATSAPP_APP").await["steps"][0]["status"], "DONE");
    let application = p.current().await;
    assert_eq!(application["status"], "DOWNGRADED");
    assert!(outcomes(&application).contains(&"DOWNGRADE_COMPLETED:SUCCEEDED".to_owned()));
    let account = p.data("{ whatsappAccount { provider } }", json!({})).await;
    assert_eq!(account["whatsappAccount"], Value::Null);
}

/// Serves `html` at every path, as the business's website would.
async fn serve_page(html: String) -> (String, tokio::task::AbortHandle) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(move || {
        let html = html.clone();
        async move { axum::response::Html(html) }
    });
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, server.abort_handle())
}

/// Loads `url` in headless Chromium and returns the DOM once its scripts have run.
async fn browse(url: &str) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("Chromium answers within 90 s")
        .unwrap_or_else(|e| panic!("{chromium} could not run (scripts/services installs it): {e}"));
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A `data-` attribute the page's test script wrote on `<body>`.
fn body_attribute(dom: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} not in the page: {dom}"))
        + marker.len();
    let end = dom[start..].find('"').unwrap() + start;
    dom[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn the_chat_button_snippet_works_in_a_real_browser() {
    let p = Project::sandbox("Chatbutton", Duration::ZERO).await;
    let hostile = "</script><img src=x onerror=\"window.__pwned=1\">";
    let reply = p
        .data(
            "query($input: ChatButtonInput!) { chatButton(input: $input) {
               phoneNumber link snippet marginBottom marginLeft marginRight borderRadius
               position prefilledMessage ctaText widgetCtaText onScreenMessage backgroundColor
               pages { url link prefilledMessage onScreenMessage } } }",
            json!({ "input": {
                "phoneNumber": NUMBER,
                "brandName": hostile,
                "onScreenMessage": "Hello! Ask us anything",
                "overrides": [{ "url": "/pricing", "prefilledMessage": "I'd like a quote & more",
                                "onScreenMessage": "Questions about prices?" }],
            }}),
        )
        .await["chatButton"]
        .clone();
    // SPEC section 8's defaults.
    assert_eq!(reply["link"], "https://wa.me/919812345678?text=Hi");
    assert_eq!(
        (
            &reply["marginBottom"],
            &reply["marginLeft"],
            &reply["marginRight"],
            &reply["borderRadius"]
        ),
        (&json!(30), &json!(30), &json!(30), &json!(24))
    );
    assert_eq!(reply["prefilledMessage"], "Hi");
    assert_eq!(reply["position"], "LEFT");
    let pricing_link = "https://wa.me/919812345678?text=I%27d%20like%20a%20quote%20%26%20more";
    assert_eq!(reply["pages"][0]["link"], pricing_link);
    let snippet = reply["snippet"].as_str().unwrap();
    assert!(!snippet.contains("<img"), "{snippet}");
    assert_eq!(snippet.to_lowercase().matches("</script").count(), 1);

    // Bad values are refused.
    let bad = p
        .send(
            &p.owner,
            "{ chatButton(input: { phoneNumber: \"+919812345678\", backgroundColor: \"red;x:y\" }) { link } }",
            json!({}),
        )
        .await;
    assert_eq!(
        bad.body["errors"][0]["extensions"]["field"],
        "backgroundColor"
    );
    let short = p
        .send(
            &p.owner,
            "{ chatButton(input: { phoneNumber: \"56161\" }) { link } }",
            json!({}),
        )
        .await;
    short.expect_error("BAD_USER_INPUT");
    // Without a number, the project's live number (none yet).
    p.send(&p.owner, "{ chatButton(input: {}) { link } }", json!({}))
        .await
        .expect_error("BAD_USER_INPUT");

    // A page with the snippet; its own script clicks the button, then the widget's call
    // to action, and notes what the browser was sent to (instead of leaving the page).
    let page = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Acme Shoes</title></head>
<body>
<h1>Acme Shoes</h1>
<script>
document.addEventListener("click", function (event) {{
  var link = event.target.closest && event.target.closest("a");
  if (link) {{ event.preventDefault(); document.body.setAttribute("data-opened", link.href); }}
}}, true);
window.open = function (url) {{ document.body.setAttribute("data-opened", url); return null; }};
</script>
{snippet}
<script>
window.addEventListener("load", function () {{
  var button = document.getElementById("parley-wa-button");
  var widget = document.getElementById("parley-wa-widget");
  document.body.setAttribute("data-button-text", button.textContent);
  document.body.setAttribute("data-widget-before", widget.style.display);
  button.click();
  document.body.setAttribute("data-widget-after", widget.style.display);
  document.body.setAttribute("data-message", document.getElementById("parley-wa-message").textContent);
  document.getElementById("parley-wa-start").click();
  document.body.setAttribute("data-left", button.style.left);
  document.body.setAttribute("data-bottom", button.style.bottom);
  document.body.setAttribute("data-radius", button.style.borderRadius);
  document.body.setAttribute("data-pwned", String(!!window.__pwned));
  document.body.setAttribute("data-images", String(document.images.length));
  document.body.setAttribute("data-done", "yes");
}});
</script>
</body></html>"#
    );
    let (site, server) = serve_page(page).await;

    let home = browse(&format!("{site}/")).await;
    assert_eq!(body_attribute(&home, "data-done"), "yes", "{home}");
    assert_eq!(body_attribute(&home, "data-button-text"), "Chat with us");
    assert_eq!(body_attribute(&home, "data-widget-before"), "none");
    assert_eq!(body_attribute(&home, "data-widget-after"), "block");
    assert_eq!(
        body_attribute(&home, "data-opened"),
        "https://wa.me/919812345678?text=Hi"
    );
    assert_eq!(
        body_attribute(&home, "data-message"),
        "Hello! Ask us anything"
    );
    assert_eq!(body_attribute(&home, "data-left"), "30px");
    assert_eq!(body_attribute(&home, "data-bottom"), "30px");
    assert_eq!(body_attribute(&home, "data-radius"), "24px");
    // The hostile brand name is text on the page, not markup.
    assert_eq!(body_attribute(&home, "data-pwned"), "false");
    assert_eq!(body_attribute(&home, "data-images"), "0");
    assert!(
        home.contains(
            "<strong id=\"parley-wa-brand\">&lt;/script&gt;&lt;img src=x onerror=\"window.__pwned=1\"&gt;</strong>"
        ),
        "{home}"
    );

    // The per-URL override applies on /pricing (with its query string).
    let pricing = browse(&format!("{site}/pricing?plan=pro")).await;
    assert_eq!(body_attribute(&pricing, "data-opened"), pricing_link);
    assert_eq!(
        body_attribute(&pricing, "data-message"),
        "Questions about prices?"
    );
    server.abort();
}
