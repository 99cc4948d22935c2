//! Template text and drafts: any text splits into segments that give it back unchanged;
//! any draft gets a verdict (with problems that name their input), never a panic; Meta's
//! component JSON, whatever its shape, reads back into a template or `None`.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{config, nasty_text};
use crate::templates::{
    meta_shape,
    model::{
        Body, Button, Category, Components, Header, HeaderFormat, NamedExample, ParameterFormat,
        TemplateDraft,
    },
    validate::{self, Segment},
};

const CORPUS: &str = include_str!("corpus/template_texts.txt");

/// Template-ish text: words, parameters well and badly formed, braces and line ends.
fn template_text() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_text(),
        proptest::collection::vec(
            prop_oneof![
                "[a-z ]{0,8}",
                "\\{\\{[0-9]{1,3}\\}\\}",
                "\\{\\{[a-z_][a-z0-9_]{0,6}\\}\\}",
                "[{}]{1,4}",
                Just("\n".to_owned()),
                "\\{\\{[^{}]{0,4}\\}?",
            ],
            0..16
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn rebuilt(text: &str) -> String {
    validate::segments(text)
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) | Segment::Malformed(t) => t.to_owned(),
            Segment::Param(p) => p.to_string(),
        })
        .collect()
}

fn draft() -> impl Strategy<Value = TemplateDraft> {
    let header = proptest::option::of(
        (
            prop_oneof![
                Just(HeaderFormat::Text),
                Just(HeaderFormat::Image),
                Just(HeaderFormat::Video),
                Just(HeaderFormat::Document),
            ],
            proptest::option::of(template_text()),
            proptest::option::of(nasty_text()),
        )
            .prop_map(|(format, text, example)| Header {
                format,
                text,
                example,
            }),
    );
    let button = prop_oneof![
        nasty_text().prop_map(|text| Button::QuickReply { text }),
        (
            nasty_text(),
            template_text(),
            proptest::option::of(nasty_text())
        )
            .prop_map(|(text, url, example)| Button::Url { text, url, example }),
        (nasty_text(), "\\+?[0-9 ]{0,18}")
            .prop_map(|(text, phone_number)| Button::PhoneNumber { text, phone_number }),
        nasty_text().prop_map(|example| Button::CopyCode { example }),
    ];
    (
        nasty_text(),
        prop_oneof![Just("en_US".to_owned()), nasty_text()],
        prop_oneof![
            Just(Category::Marketing),
            Just(Category::Utility),
            Just(Category::Authentication),
        ],
        prop_oneof![
            Just(ParameterFormat::Positional),
            Just(ParameterFormat::Named)
        ],
        header,
        template_text(),
        proptest::collection::vec(nasty_text(), 0..4),
        proptest::collection::vec((nasty_text(), nasty_text()), 0..3),
        proptest::option::of(template_text()),
        proptest::collection::vec(button, 0..12),
    )
        .prop_map(
            |(name, language, category, format, header, text, examples, named, footer, buttons)| {
                TemplateDraft {
                    name,
                    language,
                    category,
                    parameter_format: format,
                    components: Components {
                        header,
                        body: Body {
                            text,
                            examples,
                            named_examples: named
                                .into_iter()
                                .map(|(name, example)| NamedExample { name, example })
                                .collect(),
                        },
                        footer,
                        buttons,
                    },
                }
            },
        )
}

/// JSON of any shape, with Meta's component keys appearing often.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            template_text(),
            Just("HEADER".to_owned()),
            Just("BODY".to_owned()),
            Just("FOOTER".to_owned()),
            Just("BUTTONS".to_owned()),
            Just("TEXT".to_owned()),
            Just("URL".to_owned()),
            Just("QUICK_REPLY".to_owned()),
            Just("COPY_CODE".to_owned()),
            Just("PHONE_NUMBER".to_owned()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("format".to_owned()),
                    Just("text".to_owned()),
                    Just("example".to_owned()),
                    Just("buttons".to_owned()),
                    Just("url".to_owned()),
                    Just("phone_number".to_owned()),
                    Just("body_text".to_owned()),
                    Just("header_text".to_owned()),
                    Just("body_text_named_params".to_owned()),
                    Just("param_name".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn segments_give_back_the_text(text in template_text()) {
        prop_assert_eq!(rebuilt(&text), text.clone());
        // Parameters are exactly the well-formed segments.
        let from_segments = validate::segments(&text)
            .into_iter()
            .filter(|s| matches!(s, Segment::Param(_)))
            .count();
        prop_assert_eq!(validate::params(&text).count(), from_segments);
    }

    #[test]
    fn any_draft_gets_a_verdict_with_named_problems(draft in draft()) {
        let verdict = validate::validate(&draft);
        if let Err(problems) = &verdict {
            prop_assert!(!problems.is_empty());
            for problem in problems {
                prop_assert!(!problem.path.is_empty() && !problem.message.is_empty());
                prop_assert!(
                    !problem.code.is_empty()
                        && problem.code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                );
            }
        }
        // The same draft, the same verdict.
        prop_assert_eq!(validate::validate(&draft), verdict);
        // Whatever the verdict, the shapes built for Meta and for previews hold.
        let slots = meta_shape::slots(&draft.components, draft.parameter_format);
        let values = meta_shape::SendValues {
            body: slots.body.iter().map(|_| "v".to_owned()).collect(),
            ..Default::default()
        };
        meta_shape::render_preview(&draft.components, draft.parameter_format, &values);
        meta_shape::to_meta_components(&draft.components, draft.parameter_format);
    }

    #[test]
    fn meta_components_of_any_shape_read_back_or_not_at_all(components in proptest::collection::vec(json_value(), 0..6)) {
        if let Some((read, format)) = meta_shape::from_meta_components(&components) {
            // What was read writes back to Meta's shape and reads the same again.
            let written = meta_shape::to_meta_components(&read, format);
            let again = meta_shape::from_meta_components(&written);
            prop_assert_eq!(again, Some((read, format)));
        }
    }

    #[test]
    fn parameter_sources_parse_any_text(value in nasty_text(), fallback in proptest::option::of(nasty_text())) {
        let source = crate::templates::render::parse(&value, fallback.as_deref());
        let contact = crate::templates::render::ContactValues::default();
        crate::templates::render::resolve(&source, &contact).ok();
    }
}

#[test]
fn the_seed_corpus_splits_and_validates() {
    for text in CORPUS.split('\u{241E}') {
        assert_eq!(rebuilt(text), text);
        let draft = TemplateDraft {
            name: "corpus".into(),
            language: "en_US".into(),
            category: Category::Utility,
            parameter_format: ParameterFormat::Positional,
            components: Components {
                header: None,
                body: Body {
                    text: text.to_owned(),
                    examples: vec!["x".into()],
                    named_examples: Vec::new(),
                },
                footer: Some(text.to_owned()),
                buttons: Vec::new(),
            },
        };
        validate::validate(&draft).ok();
    }
    // Malformed braces are reported, never taken for parameters.
    let draft_with = |text: &str| TemplateDraft {
        name: "braces".into(),
        language: "en_US".into(),
        category: Category::Utility,
        parameter_format: ParameterFormat::Positional,
        components: Components {
            header: None,
            body: Body {
                text: text.to_owned(),
                examples: vec!["x".into()],
                named_examples: Vec::new(),
            },
            footer: None,
            buttons: Vec::new(),
        },
    };
    for bad in [
        "Hi {{1}, your order is ready",
        "Hi {{01}} there friend",
        "Hi {{ 1 }} there",
    ] {
        assert!(validate::validate(&draft_with(bad)).is_err(), "{bad}");
    }
}
