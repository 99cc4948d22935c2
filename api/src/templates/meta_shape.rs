//! Parley's template model in and out of Meta's JSON: the `components` of a template
//! creation, the same read back from Meta's template list, and the `components` of a
//! template send.

use serde_json::{Value, json};

use super::model::{Body, Button, Components, Header, HeaderFormat, NamedExample, ParameterFormat};
use super::validate::{Param, Segment, URL_SUFFIX, params, segments};

/// What a send of a template has to supply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    /// The name of the text header's parameter (`"1"` or `"first_name"`), when it has one.
    pub header_text: Option<String>,
    /// The header is a media header, whose media is given at send time.
    pub header_media: Option<HeaderFormat>,
    /// Body parameter names (`"1"`… or `"first_name"`…), distinct, in order of first
    /// appearance.
    pub body: Vec<String>,
    /// Indexes, among all buttons, of URL buttons ending in `{{1}}`.
    pub url_buttons: Vec<usize>,
}

/// Values for a send, matching [`Slots`]: `body[i]` fills `slots.body[i]` and
/// `url_suffixes[i]` fills `slots.url_buttons[i]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendValues {
    pub header_text: Option<String>,
    pub header_media_link: Option<String>,
    pub body: Vec<String>,
    pub url_suffixes: Vec<String>,
}

/// The `components` array of Meta's "create message template" request.
///
/// A media header's sample goes into `header_handle` as the draft holds it. Meta's
/// Cloud API wants a handle from its resumable upload there, so a caller talking to it
/// swaps the URL for an uploaded handle first.
pub fn to_meta_components(c: &Components, format: ParameterFormat) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(header) = &c.header {
        out.push(header_to_meta(header, format));
    }
    out.push(body_to_meta(&c.body, format));
    if let Some(footer) = &c.footer {
        out.push(json!({ "type": "FOOTER", "text": footer }));
    }
    if !c.buttons.is_empty() {
        let buttons: Vec<Value> = c.buttons.iter().map(button_to_meta).collect();
        out.push(json!({ "type": "BUTTONS", "buttons": buttons }));
    }
    out
}

fn header_format_name(format: HeaderFormat) -> &'static str {
    match format {
        HeaderFormat::Text => "TEXT",
        HeaderFormat::Image => "IMAGE",
        HeaderFormat::Video => "VIDEO",
        HeaderFormat::Document => "DOCUMENT",
    }
}

fn header_to_meta(header: &Header, format: ParameterFormat) -> Value {
    let mut out = json!({ "type": "HEADER", "format": header_format_name(header.format) });
    let example = header.example.as_deref();
    if header.format != HeaderFormat::Text {
        if let Some(handle) = example {
            out["example"] = json!({ "header_handle": [handle] });
        }
        return out;
    }
    let text = header.text.as_deref().unwrap_or("");
    out["text"] = json!(text);
    match (params(text).next(), example) {
        (Some(Param::Named(name)), Some(example)) if format == ParameterFormat::Named => {
            out["example"] = json!({
                "header_text_named_params": [{ "param_name": name, "example": example }]
            });
        }
        (Some(_), Some(example)) => out["example"] = json!({ "header_text": [example] }),
        _ => {}
    }
    out
}

fn body_to_meta(body: &Body, format: ParameterFormat) -> Value {
    let mut out = json!({ "type": "BODY", "text": body.text });
    let names = parameter_names(&body.text, format);
    if names.is_empty() {
        return out;
    }
    let example = match format {
        ParameterFormat::Positional if !body.examples.is_empty() => {
            Some(json!({ "body_text": [body.examples] }))
        }
        ParameterFormat::Positional => None,
        ParameterFormat::Named => named_body_example(body, &names),
    };
    if let Some(example) = example {
        out["example"] = example;
    }
    out
}

/// Examples in the order the parameters appear; parameters without one are left out.
fn named_body_example(body: &Body, names: &[String]) -> Option<Value> {
    let params: Vec<Value> = names
        .iter()
        .filter_map(|name| {
            let given = body.named_examples.iter().find(|e| &e.name == name)?;
            Some(json!({ "param_name": name, "example": given.example }))
        })
        .collect();
    (!params.is_empty()).then(|| json!({ "body_text_named_params": params }))
}

fn button_to_meta(button: &Button) -> Value {
    match button {
        Button::QuickReply { text } => json!({ "type": "QUICK_REPLY", "text": text }),
        Button::Url { text, url, example } => {
            let mut out = json!({ "type": "URL", "text": text, "url": url });
            if let Some(example) = example {
                out["example"] = json!([example]);
            }
            out
        }
        Button::PhoneNumber { text, phone_number } => {
            json!({ "type": "PHONE_NUMBER", "text": text, "phone_number": phone_number })
        }
        Button::CopyCode { example } => json!({ "type": "COPY_CODE", "example": example }),
    }
}

/// Reads the `components` of a template listed by Meta, which Parley may not have
/// created: unknown fields are ignored, and so are header formats and button types the
/// model lacks (a location header, OTP or flow buttons). `None` without a body.
pub fn from_meta_components(components: &[Value]) -> Option<(Components, ParameterFormat)> {
    let find = |kind: &str| {
        components
            .iter()
            .find(|c| str_at(c, "type").eq_ignore_ascii_case(kind))
    };
    let body = body_from_meta(find("BODY")?)?;
    let header = find("HEADER").and_then(header_from_meta);
    let footer = find("FOOTER")
        .and_then(|c| c.get("text")?.as_str())
        .map(str::to_owned);
    let buttons = find("BUTTONS")
        .and_then(|c| c["buttons"].as_array())
        .map(|list| list.iter().filter_map(button_from_meta).collect())
        .unwrap_or_default();
    let format = detect_format(components, &body, header.as_ref());
    let components = Components {
        header,
        body,
        footer,
        buttons,
    };
    Some((components, format))
}

/// A string field, or `""` when absent or not a string.
fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Meta writes some examples as a string and some as a one-element array.
fn first_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn body_from_meta(value: &Value) -> Option<Body> {
    let text = value.get("text")?.as_str()?.to_owned();
    let example = value.get("example");
    let examples = example
        .and_then(|e| e.get("body_text"))
        .and_then(|rows| rows.get(0))
        .and_then(Value::as_array)
        .map(|row| row.iter().map(value_text).collect())
        .unwrap_or_default();
    let named_examples = example
        .and_then(|e| e.get("body_text_named_params"))
        .map(named_examples_from_meta)
        .unwrap_or_default();
    Some(Body {
        text,
        examples,
        named_examples,
    })
}

/// Example values are strings, but a number is kept rather than dropped.
fn value_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn named_examples_from_meta(value: &Value) -> Vec<NamedExample> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|item| NamedExample {
            name: str_at(item, "param_name").to_owned(),
            example: item.get("example").map(value_text).unwrap_or_default(),
        })
        .collect()
}

fn header_from_meta(value: &Value) -> Option<Header> {
    let format = match str_at(value, "format").to_ascii_uppercase().as_str() {
        "TEXT" => HeaderFormat::Text,
        "IMAGE" => HeaderFormat::Image,
        "VIDEO" => HeaderFormat::Video,
        "DOCUMENT" => HeaderFormat::Document,
        _ => return None,
    };
    let example = value.get("example");
    let example = if format == HeaderFormat::Text {
        let positional = example.and_then(|e| first_string(e.get("header_text")));
        positional.or_else(|| {
            example
                .and_then(|e| e.get("header_text_named_params"))
                .map(named_examples_from_meta)
                .and_then(|named| named.into_iter().next())
                .map(|named| named.example)
        })
    } else {
        example.and_then(|e| first_string(e.get("header_handle")))
    };
    let text = value.get("text").and_then(Value::as_str).map(str::to_owned);
    Some(Header {
        format,
        text,
        example,
    })
}

fn button_from_meta(value: &Value) -> Option<Button> {
    let text = str_at(value, "text").to_owned();
    let button = match str_at(value, "type").to_ascii_uppercase().as_str() {
        "QUICK_REPLY" => Button::QuickReply { text },
        "URL" => Button::Url {
            text,
            url: str_at(value, "url").to_owned(),
            example: first_string(value.get("example")),
        },
        "PHONE_NUMBER" => Button::PhoneNumber {
            text,
            phone_number: str_at(value, "phone_number").to_owned(),
        },
        "COPY_CODE" => Button::CopyCode {
            example: first_string(value.get("example")).unwrap_or_default(),
        },
        _ => return None,
    };
    Some(button)
}

/// Named when Meta's examples are by name or the text uses names; positional otherwise
/// (Meta's default, and the only format of older templates).
fn detect_format(components: &[Value], body: &Body, header: Option<&Header>) -> ParameterFormat {
    let named_examples = components.iter().any(|c| {
        let example = &c["example"];
        example.get("body_text_named_params").is_some()
            || example.get("header_text_named_params").is_some()
    });
    let header_text = header.and_then(|h| h.text.as_deref()).unwrap_or("");
    let named_params = params(&body.text)
        .chain(params(header_text))
        .any(|p| matches!(p, Param::Named(_)));
    if named_examples || named_params {
        ParameterFormat::Named
    } else {
        ParameterFormat::Positional
    }
}

/// Distinct names of the text's parameters of the template's format, by first
/// appearance.
fn parameter_names(text: &str, format: ParameterFormat) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in params(text).filter(|p| p.fits(format)) {
        let name = p.name();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// What a send of the template needs.
pub fn slots(c: &Components, format: ParameterFormat) -> Slots {
    let header = c.header.as_ref();
    let header_text = header
        .filter(|h| h.format == HeaderFormat::Text)
        .and_then(|h| params(h.text.as_deref().unwrap_or("")).next())
        .map(|p| p.name());
    let header_media = header
        .map(|h| h.format)
        .filter(|f| *f != HeaderFormat::Text);
    let url_buttons = c
        .buttons
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, Button::Url { url, .. } if url.ends_with(URL_SUFFIX)))
        .map(|(i, _)| i)
        .collect();
    Slots {
        header_text,
        header_media,
        body: parameter_names(&c.body.text, format),
        url_buttons,
    }
}

/// Meta's `template.components` of a send.
///
/// Values are expected to match the slots. So that a missing value can never shift the
/// others into the wrong place, a missing text is sent empty (and Meta rejects the
/// send); a media header without a link is left out.
///
/// Positional body parameters go in number order, as Meta fills `{{1}}` with the
/// first; named ones carry their `parameter_name`.
pub fn send_components(slots: &Slots, format: ParameterFormat, values: &SendValues) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(header) = header_parameter(slots, format, values) {
        out.push(json!({ "type": "header", "parameters": [header] }));
    }
    if !slots.body.is_empty() {
        let parameters = body_parameters(slots, format, values);
        out.push(json!({ "type": "body", "parameters": parameters }));
    }
    for (k, index) in slots.url_buttons.iter().enumerate() {
        let suffix = values.url_suffixes.get(k).map_or("", String::as_str);
        out.push(json!({
            "type": "button",
            "sub_type": "url",
            "index": index.to_string(),
            "parameters": [text_parameter(suffix)],
        }));
    }
    out
}

fn text_parameter(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

fn header_parameter(slots: &Slots, format: ParameterFormat, values: &SendValues) -> Option<Value> {
    if let Some(name) = &slots.header_text {
        let mut parameter = text_parameter(values.header_text.as_deref().unwrap_or(""));
        if format == ParameterFormat::Named {
            parameter["parameter_name"] = json!(name);
        }
        return Some(parameter);
    }
    let kind = match slots.header_media? {
        HeaderFormat::Text => return None,
        HeaderFormat::Image => "image",
        HeaderFormat::Video => "video",
        HeaderFormat::Document => "document",
    };
    let link = values.header_media_link.as_deref()?;
    let mut parameter = json!({ "type": kind });
    parameter[kind] = json!({ "link": link });
    Some(parameter)
}

fn body_parameters(slots: &Slots, format: ParameterFormat, values: &SendValues) -> Vec<Value> {
    let mut order: Vec<usize> = (0..slots.body.len()).collect();
    if format == ParameterFormat::Positional {
        order.sort_by_key(|&i| slots.body[i].parse::<usize>().unwrap_or(usize::MAX));
    }
    order
        .into_iter()
        .map(|i| {
            let mut parameter = text_parameter(values.body.get(i).map_or("", String::as_str));
            if format == ParameterFormat::Named {
                parameter["parameter_name"] = json!(slots.body[i]);
            }
            parameter
        })
        .collect()
}

/// The body as the recipient reads it, to store as the sent message's text. Parameters
/// without a value stay as written.
pub fn render_preview(c: &Components, format: ParameterFormat, values: &SendValues) -> String {
    let names = parameter_names(&c.body.text, format);
    let mut out = String::with_capacity(c.body.text.len());
    for segment in segments(&c.body.text) {
        match segment {
            Segment::Text(text) | Segment::Malformed(text) => out.push_str(text),
            Segment::Param(p) => {
                let value = names
                    .iter()
                    .position(|name| *name == p.name())
                    .filter(|_| p.fits(format))
                    .and_then(|i| values.body.get(i));
                match value {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&p.to_string()),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positional() -> Components {
        Components {
            header: Some(Header {
                format: HeaderFormat::Text,
                text: Some("Order {{1}}".into()),
                example: Some("#1234".into()),
            }),
            body: Body {
                text: "Hi {{1}}, your order {{2}} is on its way, {{1}}.".into(),
                examples: vec!["Ana".into(), "#1234".into()],
                named_examples: vec![],
            },
            footer: Some("Reply STOP to opt out".into()),
            buttons: vec![
                Button::QuickReply {
                    text: "Thanks".into(),
                },
                Button::Url {
                    text: "Help".into(),
                    url: "https://shop.example/help".into(),
                    example: None,
                },
                Button::Url {
                    text: "Track".into(),
                    url: "https://shop.example/track/{{1}}".into(),
                    example: Some("https://shop.example/track/42".into()),
                },
                Button::PhoneNumber {
                    text: "Call us".into(),
                    phone_number: "+14155550123".into(),
                },
                Button::CopyCode {
                    example: "SAVE10".into(),
                },
            ],
        }
    }

    fn named() -> Components {
        Components {
            header: Some(Header {
                format: HeaderFormat::Text,
                text: Some("Hello {{first_name}}".into()),
                example: Some("Ana".into()),
            }),
            body: Body {
                text: "Hi {{first_name}}, order {{order_id}} ships today, {{first_name}}.".into(),
                examples: vec![],
                named_examples: vec![
                    NamedExample {
                        name: "order_id".into(),
                        example: "42".into(),
                    },
                    NamedExample {
                        name: "first_name".into(),
                        example: "Ana".into(),
                    },
                ],
            },
            footer: None,
            buttons: vec![],
        }
    }

    fn plain(body: &str) -> Components {
        Components {
            header: None,
            body: Body {
                text: body.into(),
                examples: vec![],
                named_examples: vec![],
            },
            footer: None,
            buttons: vec![],
        }
    }

    fn media(format: HeaderFormat) -> Components {
        let mut c = plain("See the attached file, please.");
        c.header = Some(Header {
            format,
            text: None,
            example: Some("https://cdn.example/f".into()),
        });
        c
    }

    #[test]
    fn positional_components_take_meta_creation_shape() {
        assert_eq!(
            to_meta_components(&positional(), ParameterFormat::Positional),
            vec![
                json!({
                    "type": "HEADER", "format": "TEXT", "text": "Order {{1}}",
                    "example": { "header_text": ["#1234"] }
                }),
                json!({
                    "type": "BODY",
                    "text": "Hi {{1}}, your order {{2}} is on its way, {{1}}.",
                    "example": { "body_text": [["Ana", "#1234"]] }
                }),
                json!({ "type": "FOOTER", "text": "Reply STOP to opt out" }),
                json!({
                    "type": "BUTTONS",
                    "buttons": [
                        { "type": "QUICK_REPLY", "text": "Thanks" },
                        { "type": "URL", "text": "Help", "url": "https://shop.example/help" },
                        {
                            "type": "URL", "text": "Track",
                            "url": "https://shop.example/track/{{1}}",
                            "example": ["https://shop.example/track/42"]
                        },
                        { "type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550123" },
                        { "type": "COPY_CODE", "example": "SAVE10" }
                    ]
                }),
            ]
        );
    }

    #[test]
    fn named_examples_follow_the_order_of_the_text() {
        assert_eq!(
            to_meta_components(&named(), ParameterFormat::Named),
            vec![
                json!({
                    "type": "HEADER", "format": "TEXT", "text": "Hello {{first_name}}",
                    "example": {
                        "header_text_named_params": [{ "param_name": "first_name", "example": "Ana" }]
                    }
                }),
                json!({
                    "type": "BODY",
                    "text": "Hi {{first_name}}, order {{order_id}} ships today, {{first_name}}.",
                    "example": {
                        "body_text_named_params": [
                            { "param_name": "first_name", "example": "Ana" },
                            { "param_name": "order_id", "example": "42" }
                        ]
                    }
                }),
            ]
        );
    }

    #[test]
    fn texts_without_parameters_have_no_example() {
        let mut c = plain("Thanks for your order, see you soon.");
        c.header = Some(Header {
            format: HeaderFormat::Text,
            text: Some("Thank you".into()),
            example: None,
        });
        assert_eq!(
            to_meta_components(&c, ParameterFormat::Positional),
            vec![
                json!({ "type": "HEADER", "format": "TEXT", "text": "Thank you" }),
                json!({ "type": "BODY", "text": "Thanks for your order, see you soon." }),
            ]
        );
    }

    #[test]
    fn media_headers_carry_their_sample_as_handle() {
        for (format, name) in [
            (HeaderFormat::Image, "IMAGE"),
            (HeaderFormat::Video, "VIDEO"),
            (HeaderFormat::Document, "DOCUMENT"),
        ] {
            assert_eq!(
                to_meta_components(&media(format), ParameterFormat::Positional)[0],
                json!({
                    "type": "HEADER", "format": name,
                    "example": { "header_handle": ["https://cdn.example/f"] }
                })
            );
        }
    }

    #[test]
    fn created_components_read_back_the_same() {
        let cases = [
            (positional(), ParameterFormat::Positional),
            (named(), ParameterFormat::Named),
            (media(HeaderFormat::Video), ParameterFormat::Positional),
            (
                plain("Nothing to fill in here."),
                ParameterFormat::Positional,
            ),
        ];
        for (components, format) in cases {
            let meta = to_meta_components(&components, format);
            let mut expected = components.clone();
            if format == ParameterFormat::Named {
                // Meta lists named examples in the order of the text.
                expected.body.named_examples.reverse();
            }
            assert_eq!(from_meta_components(&meta), Some((expected, format)));
        }
    }

    #[test]
    fn listed_templates_are_read_leniently() {
        let listed = [
            json!({ "type": "HEADER", "format": "LOCATION" }),
            json!({
                "type": "body", "text": "Your code is {{1}}.", "add_security_recommendation": true,
                "example": { "body_text": [[123456]] }
            }),
            json!({ "type": "FOOTER", "text": "Expires in 10 minutes." }),
            json!({
                "type": "BUTTONS",
                "buttons": [
                    { "type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code" },
                    { "type": "COPY_CODE", "example": ["SAVE10"] },
                    { "type": "FLOW", "text": "Book", "flow_id": "1" },
                    { "type": "URL", "text": "Open", "url": "https://a.example" }
                ]
            }),
        ];
        let (components, format) = from_meta_components(&listed).expect("a body");
        assert_eq!(format, ParameterFormat::Positional);
        assert_eq!(
            components,
            Components {
                header: None,
                body: Body {
                    text: "Your code is {{1}}.".into(),
                    examples: vec!["123456".into()],
                    named_examples: vec![],
                },
                footer: Some("Expires in 10 minutes.".into()),
                buttons: vec![
                    Button::CopyCode {
                        example: "SAVE10".into()
                    },
                    Button::Url {
                        text: "Open".into(),
                        url: "https://a.example".into(),
                        example: None,
                    },
                ],
            }
        );
    }

    #[test]
    fn named_format_is_detected_from_the_text_alone() {
        let listed = [json!({ "type": "BODY", "text": "Hi {{first_name}}, welcome aboard." })];
        let (_, format) = from_meta_components(&listed).expect("a body");
        assert_eq!(format, ParameterFormat::Named);
    }

    #[test]
    fn templates_without_a_body_text_are_not_read() {
        let cases = [
            vec![],
            vec![json!({ "type": "FOOTER", "text": "Bye" })],
            vec![json!({ "type": "BODY" })],
            vec![json!({ "type": "BODY", "text": 3 })],
        ];
        for listed in cases {
            assert_eq!(from_meta_components(&listed), None, "{listed:?}");
        }
    }

    #[test]
    fn slots_list_what_a_send_needs() {
        assert_eq!(
            slots(&positional(), ParameterFormat::Positional),
            Slots {
                header_text: Some("1".into()),
                header_media: None,
                body: vec!["1".into(), "2".into()],
                url_buttons: vec![2],
            }
        );
        assert_eq!(
            slots(&named(), ParameterFormat::Named),
            Slots {
                header_text: Some("first_name".into()),
                header_media: None,
                body: vec!["first_name".into(), "order_id".into()],
                url_buttons: vec![],
            }
        );
        assert_eq!(
            slots(&media(HeaderFormat::Document), ParameterFormat::Positional),
            Slots {
                header_media: Some(HeaderFormat::Document),
                ..Slots::default()
            }
        );
        assert_eq!(
            slots(
                &plain("Hi {{2}}, meet {{1}} today."),
                ParameterFormat::Positional
            )
            .body,
            ["2", "1"]
        );
    }

    #[test]
    fn positional_sends_fill_every_slot() {
        let c = positional();
        let values = SendValues {
            header_text: Some("#77".into()),
            header_media_link: None,
            body: vec!["Bo".into(), "#77".into()],
            url_suffixes: vec!["77".into()],
        };
        assert_eq!(
            send_components(
                &slots(&c, ParameterFormat::Positional),
                ParameterFormat::Positional,
                &values
            ),
            vec![
                json!({ "type": "header", "parameters": [{ "type": "text", "text": "#77" }] }),
                json!({
                    "type": "body",
                    "parameters": [{ "type": "text", "text": "Bo" }, { "type": "text", "text": "#77" }]
                }),
                json!({
                    "type": "button", "sub_type": "url", "index": "2",
                    "parameters": [{ "type": "text", "text": "77" }]
                }),
            ]
        );
    }

    #[test]
    fn named_sends_name_their_parameters() {
        let c = named();
        let values = SendValues {
            header_text: Some("Bo".into()),
            body: vec!["Bo".into(), "77".into()],
            ..SendValues::default()
        };
        let sent = send_components(
            &slots(&c, ParameterFormat::Named),
            ParameterFormat::Named,
            &values,
        );
        assert_eq!(
            sent[0],
            json!({
                "type": "header",
                "parameters": [{ "type": "text", "text": "Bo", "parameter_name": "first_name" }]
            })
        );
        assert_eq!(
            sent[1],
            json!({
                "type": "body",
                "parameters": [
                    { "type": "text", "text": "Bo", "parameter_name": "first_name" },
                    { "type": "text", "text": "77", "parameter_name": "order_id" }
                ]
            })
        );
    }

    #[test]
    fn positional_values_are_sent_in_number_order() {
        let c = plain("Hi {{2}}, meet {{1}} today.");
        let values = SendValues {
            body: vec!["second".into(), "first".into()],
            ..SendValues::default()
        };
        assert_eq!(
            send_components(
                &slots(&c, ParameterFormat::Positional),
                ParameterFormat::Positional,
                &values
            ),
            vec![json!({
                "type": "body",
                "parameters": [{ "type": "text", "text": "first" }, { "type": "text", "text": "second" }]
            })]
        );
    }

    #[test]
    fn media_headers_are_sent_by_link() {
        for (format, kind) in [
            (HeaderFormat::Image, "image"),
            (HeaderFormat::Video, "video"),
            (HeaderFormat::Document, "document"),
        ] {
            let values = SendValues {
                header_media_link: Some("https://cdn.example/x".into()),
                ..SendValues::default()
            };
            let c = media(format);
            let sent = send_components(
                &slots(&c, ParameterFormat::Positional),
                ParameterFormat::Positional,
                &values,
            );
            let mut parameter = json!({ "type": kind });
            parameter[kind] = json!({ "link": "https://cdn.example/x" });
            assert_eq!(
                sent,
                vec![json!({ "type": "header", "parameters": [parameter] })]
            );
        }
    }

    #[test]
    fn sends_leave_out_components_without_parameters() {
        let c = plain("Nothing to fill in here.");
        let values = SendValues {
            header_text: Some("ignored".into()),
            body: vec!["ignored".into()],
            ..SendValues::default()
        };
        let slots = slots(&c, ParameterFormat::Positional);
        assert_eq!(
            send_components(&slots, ParameterFormat::Positional, &values),
            Vec::<Value>::new()
        );
        let media = media(HeaderFormat::Image);
        let without_link = send_components(
            &super::slots(&media, ParameterFormat::Positional),
            ParameterFormat::Positional,
            &SendValues::default(),
        );
        assert_eq!(without_link, Vec::<Value>::new());
    }

    #[test]
    fn missing_values_are_sent_empty_rather_than_shifted() {
        let c = positional();
        let sent = send_components(
            &slots(&c, ParameterFormat::Positional),
            ParameterFormat::Positional,
            &SendValues {
                body: vec!["Bo".into()],
                ..SendValues::default()
            },
        );
        assert_eq!(sent[0]["parameters"][0]["text"], "");
        assert_eq!(sent[1]["parameters"][1]["text"], "");
        assert_eq!(sent[2]["parameters"][0]["text"], "");
    }

    #[test]
    fn previews_substitute_the_body_parameters() {
        let values = SendValues {
            body: vec!["Bo".into(), "#77".into()],
            ..SendValues::default()
        };
        assert_eq!(
            render_preview(&positional(), ParameterFormat::Positional, &values),
            "Hi Bo, your order #77 is on its way, Bo."
        );
        assert_eq!(
            render_preview(&named(), ParameterFormat::Named, &values),
            "Hi Bo, order #77 ships today, Bo."
        );
    }

    #[test]
    fn previews_keep_unfilled_parameters_as_written() {
        let values = SendValues {
            body: vec!["Bo".into()],
            ..SendValues::default()
        };
        assert_eq!(
            render_preview(&positional(), ParameterFormat::Positional, &values),
            "Hi Bo, your order {{2}} is on its way, Bo."
        );
        let odd = plain("Hi {{1}}, {{name}} and {{ 2 }} stay.");
        assert_eq!(
            render_preview(&odd, ParameterFormat::Positional, &values),
            "Hi Bo, {{name}} and {{ 2 }} stay."
        );
    }
}
