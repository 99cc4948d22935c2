use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_tests::{JWT_SECRET, TestApp};
use serde_json::{Value, json};

fn claims(user_id: &str, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": user_id, "iss": "parley", "aud": "parley-api", "iat": now,
        "exp": now + exp_offset, "jti": uuid::Uuid::new_v4(), "ver": 0,
    })
}

fn sign(header: Header, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn hs256(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    header
}

/// A token whose header and claims are written by hand, with this signature part.
fn raw_token(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn only_well_formed_current_tokens_signed_by_the_server_get_in() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Tara").await;
    let me = "{ viewer { id } }";

    // A token the test signs like the server does works: the harness knows the key.
    let good = sign(
        hs256("k1"),
        &claims(&owner.user_id, 600),
        JWT_SECRET.as_bytes(),
    );
    app.gql(me).token(&good).data().await;

    let expired = sign(
        hs256("k1"),
        &claims(&owner.user_id, -120),
        JWT_SECRET.as_bytes(),
    );
    let wrong_key = sign(
        hs256("k1"),
        &claims(&owner.user_id, 600),
        b"some-other-key-some-other-key-000",
    );
    let unknown_kid = sign(
        hs256("k9"),
        &claims(&owner.user_id, 600),
        JWT_SECRET.as_bytes(),
    );
    let mut other_audience = claims(&owner.user_id, 600);
    other_audience["aud"] = json!("another-service");
    let other_audience = sign(hs256("k1"), &other_audience, JWT_SECRET.as_bytes());
    let mut other_issuer = claims(&owner.user_id, 600);
    other_issuer["iss"] = json!("someone-else");
    let other_issuer = sign(hs256("k1"), &other_issuer, JWT_SECRET.as_bytes());
    let mut hs512 = Header::new(Algorithm::HS512);
    hs512.kid = Some("k1".into());
    let other_algorithm = sign(hs512, &claims(&owner.user_id, 600), JWT_SECRET.as_bytes());
    let alg_none = raw_token(
        json!({ "alg": "none", "typ": "JWT", "kid": "k1" }),
        &claims(&owner.user_id, 600),
        "",
    );
    // RS256 in the header, HMAC-signed with the secret: the classic key-confusion attack.
    let confused = {
        let unsigned = raw_token(
            json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }),
            &claims(&owner.user_id, 600),
            "",
        );
        let signing_input = unsigned.trim_end_matches('.');
        let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
        let mac =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{signing_input}.{mac}")
    };
    let tampered = {
        let mut parts: Vec<String> = owner.token.split('.').map(str::to_owned).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["exp"] = json!(payload["exp"].as_i64().unwrap() + 86_400 * 365);
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        parts.join(".")
    };

    for (what, token) in [
        ("expired", expired),
        ("wrong key", wrong_key),
        ("unknown key id", unknown_kid),
        ("other audience", other_audience),
        ("other issuer", other_issuer),
        ("HS512", other_algorithm),
        ("alg none", alg_none),
        ("RS256 confusion", confused),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let reply = app.gql(me).token(&token).send().await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_eq!(reply.error_code(), Some("UNAUTHENTICATED"), "{what}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    let expired = sign(
        hs256("k1"),
        &claims(&owner.user_id, -120),
        JWT_SECRET.as_bytes(),
    );
    let message = app
        .gql(me)
        .token(&expired)
        .send()
        .await
        .expect_error("UNAUTHENTICATED");
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn forged_tokens_of_every_other_shape_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Forge").await;
    let me = "{ viewer { id } }";
    let good = claims(&owner.user_id, 600);
    let secret = JWT_SECRET.as_bytes();

    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut string_exp = good.clone();
    string_exp["exp"] = json!("9999999999");
    let mut stale_version = good.clone();
    stale_version["ver"] = json!(1);
    let mut unknown_user = good.clone();
    unknown_user["sub"] = json!(uuid::Uuid::new_v4());
    let mut not_a_uuid = good.clone();
    not_a_uuid["sub"] = json!("admin");
    let mut no_header_kid = Header::new(Algorithm::HS256);
    no_header_kid.kid = None;
    let signature_of = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    let genuine = sign(hs256("k1"), &good, secret);

    for (what, token) in [
        ("no expiry", sign(hs256("k1"), &no_exp, secret)),
        ("expiry as a string", sign(hs256("k1"), &string_exp, secret)),
        (
            "stale token version",
            sign(hs256("k1"), &stale_version, secret),
        ),
        ("unknown user", sign(hs256("k1"), &unknown_user, secret)),
        (
            "subject not a user id",
            sign(hs256("k1"), &not_a_uuid, secret),
        ),
        ("no key id", sign(no_header_kid, &good, secret)),
        (
            "key id as a path",
            sign(hs256("../../data/jwt-secret"), &good, secret),
        ),
        (
            "alg None, capitalised",
            raw_token(
                json!({ "alg": "None", "typ": "JWT", "kid": "k1" }),
                &good,
                "",
            ),
        ),
        (
            "alg NONE with the genuine signature",
            raw_token(
                json!({ "alg": "NONE", "typ": "JWT", "kid": "k1" }),
                &good,
                &signature_of(&genuine),
            ),
        ),
        (
            "empty signature",
            format!("{}.", genuine.rsplit_once('.').unwrap().0),
        ),
        ("extra segment", format!("{genuine}.AAAA")),
        (
            "two segments",
            genuine.rsplit_once('.').unwrap().0.to_owned(),
        ),
        (
            "signature of another payload",
            format!(
                "{}.{}",
                raw_token(
                    json!({ "alg": "HS256", "typ": "JWT", "kid": "k1" }),
                    &stale_version,
                    ""
                )
                .trim_end_matches('.'),
                signature_of(&genuine)
            ),
        ),
        (
            "huge header",
            raw_token(
                json!({ "alg": "HS256", "kid": "k1", "x": "y".repeat(64 * 1024) }),
                &good,
                &signature_of(&genuine),
            ),
        ),
        ("not base64", "%%%.^^^.***".to_owned()),
    ] {
        let reply = app.gql(me).token(&token).send().await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_eq!(reply.error_code(), Some("UNAUTHENTICATED"), "{what}");
    }
    // The genuine one still works.
    app.gql(me).token(&genuine).data().await;
}
