//! The website chat button: a configuration (SPEC section 8's defaults) turned into a
//! click-to-chat link and a self-contained snippet to paste before `</body>`.
//!
//! The snippet carries the configuration as JSON inside its script, escaped so that no
//! value can close the script (`<`, `>`, `&` and the JavaScript line separators are
//! written as `\u` escapes), and builds its elements with `textContent` and style
//! properties only: no user value is ever parsed as HTML or CSS text. Colours are
//! `#rgb`/`#rrggbb`, sizes are numbers and the image is an http(s) URL, all checked here.
//!
//! Per-URL overrides change the pre-filled and on-screen messages (and the button's
//! text) on matching pages: an override written as a path (`/pricing`) matches pages
//! whose path and query start with it, an absolute URL matches pages whose address
//! starts with it; the longest match wins.

use serde::Serialize;

use crate::errors::{AppError, AppResult};

pub const DEFAULT_BACKGROUND: &str = "#25D366";
pub const DEFAULT_TEXT_COLOR: &str = "#FFFFFF";
pub const DEFAULT_CTA: &str = "Chat with us";
pub const DEFAULT_MARGIN: u32 = 30;
pub const DEFAULT_RADIUS: u32 = 24;
pub const DEFAULT_PREFILLED: &str = "Hi";
pub const DEFAULT_ON_SCREEN: &str = "Hi, How can I help you?";
pub const DEFAULT_WIDGET_CTA: &str = "Start Chat";
pub const MAX_OVERRIDES: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Left,
    Right,
}

/// A page-specific change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    pub url: String,
    pub prefilled_message: Option<String>,
    pub on_screen_message: Option<String>,
    pub cta_text: Option<String>,
}

/// The configuration with defaults filled in and every value checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Digits with the country code, no `+` (as wa.me wants them).
    pub number: String,
    pub background_color: String,
    pub text_color: String,
    pub cta_text: String,
    pub margin_bottom: u32,
    pub margin_left: u32,
    pub margin_right: u32,
    pub border_radius: u32,
    pub position: Position,
    pub prefilled_message: String,
    pub brand_name: Option<String>,
    pub brand_image_url: Option<String>,
    pub on_screen_message: String,
    pub widget_cta_text: String,
    pub overrides: Vec<Override>,
}

/// What the caller gives; `None` takes the default.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub background_color: Option<String>,
    pub text_color: Option<String>,
    pub cta_text: Option<String>,
    pub margin_bottom: Option<i32>,
    pub margin_left: Option<i32>,
    pub margin_right: Option<i32>,
    pub border_radius: Option<i32>,
    pub position: Option<Position>,
    pub prefilled_message: Option<String>,
    pub brand_name: Option<String>,
    pub brand_image_url: Option<String>,
    pub on_screen_message: Option<String>,
    pub widget_cta_text: Option<String>,
    pub overrides: Vec<Override>,
}

fn color(field: &'static str, value: Option<String>, default: &str) -> AppResult<String> {
    let value = value.unwrap_or_else(|| default.to_owned());
    let value = value.trim();
    let hex = value.strip_prefix('#').unwrap_or_default();
    if !matches!(hex.len(), 3 | 6) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::bad_input(
            field,
            "a colour is #rgb or #rrggbb, such as #25D366",
        ));
    }
    Ok(value.to_ascii_uppercase())
}

fn size(field: &'static str, value: Option<i32>, default: u32, max: u32) -> AppResult<u32> {
    let value = value.unwrap_or(default as i32);
    u32::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| AppError::bad_input(field, format!("from 0 to {max} pixels")))
}

/// A text shown to visitors: non-blank, at most `max` characters, on one line unless
/// `multiline`.
fn text(
    field: &'static str,
    value: Option<String>,
    default: &str,
    max: usize,
    multiline: bool,
) -> AppResult<String> {
    let value = value.unwrap_or_else(|| default.to_owned());
    checked_text(field, &value, max, multiline)
}

fn checked_text(
    field: &'static str,
    value: &str,
    max: usize,
    multiline: bool,
) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be blank"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} has at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Checks the input and fills in the defaults. `number_e164` is the checked number.
pub fn configure(number_e164: &str, input: Input) -> AppResult<Config> {
    let number: String = number_e164.chars().filter(char::is_ascii_digit).collect();
    let brand_image_url = match input.brand_image_url.filter(|u| !u.trim().is_empty()) {
        Some(url) => {
            let url = url.trim().to_owned();
            if url.len() > 2000 || super::checklist::web_host(&url).is_none() {
                return Err(AppError::bad_input(
                    "brandImageUrl",
                    "the brand image is an http(s) address",
                ));
            }
            Some(url)
        }
        None => None,
    };
    if input.overrides.len() > MAX_OVERRIDES {
        return Err(AppError::bad_input(
            "overrides",
            format!("at most {MAX_OVERRIDES} page overrides"),
        ));
    }
    let mut overrides = Vec::with_capacity(input.overrides.len());
    for o in input.overrides {
        let url = o.url.trim().to_owned();
        let absolute = super::checklist::web_host(&url).is_some();
        if url.len() > 2000 || !(absolute || url.starts_with('/')) || url.contains(char::is_control)
        {
            return Err(AppError::bad_input(
                "overrides.url",
                "a page is an http(s) address or a path starting with /",
            ));
        }
        if overrides
            .iter()
            .any(|existing: &Override| existing.url == url)
        {
            return Err(AppError::bad_input(
                "overrides.url",
                format!("{url} has two overrides"),
            ));
        }
        let optional = |field: &'static str, v: Option<String>, max: usize, multi: bool| {
            v.filter(|v| !v.trim().is_empty())
                .map(|v| checked_text(field, &v, max, multi))
                .transpose()
        };
        overrides.push(Override {
            url,
            prefilled_message: optional(
                "overrides.prefilledMessage",
                o.prefilled_message,
                1000,
                true,
            )?,
            on_screen_message: optional(
                "overrides.onScreenMessage",
                o.on_screen_message,
                500,
                true,
            )?,
            cta_text: optional("overrides.ctaText", o.cta_text, 40, false)?,
        });
    }
    Ok(Config {
        number,
        background_color: color(
            "backgroundColor",
            input.background_color,
            DEFAULT_BACKGROUND,
        )?,
        text_color: color("textColor", input.text_color, DEFAULT_TEXT_COLOR)?,
        cta_text: text("ctaText", input.cta_text, DEFAULT_CTA, 40, false)?,
        margin_bottom: size("marginBottom", input.margin_bottom, DEFAULT_MARGIN, 500)?,
        margin_left: size("marginLeft", input.margin_left, DEFAULT_MARGIN, 500)?,
        margin_right: size("marginRight", input.margin_right, DEFAULT_MARGIN, 500)?,
        border_radius: size("borderRadius", input.border_radius, DEFAULT_RADIUS, 100)?,
        position: input.position.unwrap_or(Position::Left),
        prefilled_message: text(
            "prefilledMessage",
            input.prefilled_message,
            DEFAULT_PREFILLED,
            1000,
            true,
        )?,
        brand_name: input
            .brand_name
            .filter(|b| !b.trim().is_empty())
            .map(|b| checked_text("brandName", &b, 100, false))
            .transpose()?,
        brand_image_url,
        on_screen_message: text(
            "onScreenMessage",
            input.on_screen_message,
            DEFAULT_ON_SCREEN,
            500,
            true,
        )?,
        widget_cta_text: text(
            "widgetCtaText",
            input.widget_cta_text,
            DEFAULT_WIDGET_CTA,
            40,
            false,
        )?,
        overrides,
    })
}

/// `https://wa.me/{number}?text={message}`, the message encoded as JavaScript's
/// `encodeURIComponent` does, and `'` as `%27` as browsers write it in a query: the
/// snippet builds the same links in the page, so both are the address the browser opens.
pub fn click_to_chat(number: &str, message: &str) -> String {
    format!(
        "https://wa.me/{number}?text={}",
        encode_uri_component(message)
    )
}

pub fn encode_uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'('
            | b')' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// JSON that is safe inside `<script>`: nothing in it can end the script or the line.
fn script_json(config: &Config) -> String {
    let json = serde_json::to_string(config).expect("the configuration serializes");
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// The embeddable snippet: one script, no outside resources.
pub fn snippet(config: &Config) -> String {
    format!(
        r##"<!-- WhatsApp chat button (Parley) -->
<script>
(function () {{
  var c = {config};
  if (document.getElementById("parley-wa-button")) return;
  var here = location.href.split("#")[0];
  var path = location.pathname + location.search;
  var best = null;
  c.overrides.forEach(function (o) {{
    var hit = o.url.charAt(0) === "/" ? path.indexOf(o.url) === 0 : here.indexOf(o.url) === 0;
    if (hit && (!best || o.url.length > best.url.length)) best = o;
  }});
  var pick = function (key, fallback) {{ return best && best[key] ? best[key] : fallback; }};
  var prefilled = pick("prefilledMessage", c.prefilledMessage);
  var link = "https://wa.me/" + c.number + "?text=" + encodeURIComponent(prefilled).replace(/'/g, "%27");
  var side = c.position === "right" ? "right" : "left";
  var px = function (n) {{ return n + "px"; }};
  var el = function (tag, id) {{ var e = document.createElement(tag); if (id) e.id = id; return e; }};

  var button = el("button", "parley-wa-button");
  button.type = "button";
  button.textContent = pick("ctaText", c.ctaText);
  var s = button.style;
  s.position = "fixed"; s.zIndex = "2147483000"; s.bottom = px(c.marginBottom);
  s[side] = px(side === "left" ? c.marginLeft : c.marginRight);
  s.background = c.backgroundColor; s.color = c.textColor; s.border = "0";
  s.borderRadius = px(c.borderRadius); s.padding = "12px 20px"; s.cursor = "pointer";
  s.font = "600 15px system-ui, sans-serif"; s.boxShadow = "0 4px 12px rgba(0,0,0,.2)";

  var widget = el("div", "parley-wa-widget");
  var w = widget.style;
  w.position = "fixed"; w.zIndex = "2147483000"; w.bottom = px(c.marginBottom + 60);
  w[side] = px(side === "left" ? c.marginLeft : c.marginRight);
  w.width = "300px"; w.maxWidth = "calc(100vw - 40px)"; w.background = "#FFFFFF";
  w.borderRadius = "12px"; w.boxShadow = "0 8px 24px rgba(0,0,0,.2)"; w.overflow = "hidden";
  w.font = "14px system-ui, sans-serif"; w.display = "none";

  var header = el("div", "parley-wa-header");
  header.style.background = c.backgroundColor; header.style.color = c.textColor;
  header.style.padding = "12px"; header.style.display = "flex"; header.style.alignItems = "center";
  if (c.brandImageUrl) {{
    var img = el("img", "parley-wa-brand-image");
    img.src = c.brandImageUrl; img.alt = "";
    img.style.width = "36px"; img.style.height = "36px"; img.style.borderRadius = "50%";
    img.style.marginRight = "10px";
    header.appendChild(img);
  }}
  var brand = el("strong", "parley-wa-brand");
  brand.textContent = c.brandName || "";
  header.appendChild(brand);

  var message = el("div", "parley-wa-message");
  message.textContent = pick("onScreenMessage", c.onScreenMessage);
  message.style.padding = "16px"; message.style.whiteSpace = "pre-line"; message.style.color = "#111111";

  var start = el("a", "parley-wa-start");
  start.href = link; start.target = "_blank"; start.rel = "noopener noreferrer";
  start.textContent = c.widgetCtaText;
  var a = start.style;
  a.display = "block"; a.margin = "0 16px 16px"; a.padding = "10px"; a.textAlign = "center";
  a.background = c.backgroundColor; a.color = c.textColor; a.borderRadius = "20px";
  a.textDecoration = "none"; a.fontWeight = "600";

  widget.appendChild(header); widget.appendChild(message); widget.appendChild(start);
  button.addEventListener("click", function () {{
    var open = widget.style.display !== "none";
    widget.style.display = open ? "none" : "block";
    button.setAttribute("aria-expanded", open ? "false" : "true");
  }});
  var mount = function () {{ document.body.appendChild(widget); document.body.appendChild(button); }};
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
}})();
</script>
"##,
        config = script_json(config)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(input: Input) -> Config {
        configure("+919812345678", input).unwrap()
    }

    #[test]
    fn defaults_are_the_specs() {
        let c = config(Input::default());
        assert_eq!(c.number, "919812345678");
        assert_eq!(
            (
                c.margin_bottom,
                c.margin_left,
                c.margin_right,
                c.border_radius
            ),
            (30, 30, 30, 24)
        );
        assert_eq!(c.prefilled_message, "Hi");
        assert_eq!(c.position, Position::Left);
        assert_eq!(
            click_to_chat(&c.number, &c.prefilled_message),
            "https://wa.me/919812345678?text=Hi"
        );
    }

    #[test]
    fn links_encode_like_encode_uri_component() {
        assert_eq!(
            encode_uri_component("Hi! I'd like a quote & more? é"),
            "Hi!%20I%27d%20like%20a%20quote%20%26%20more%3F%20%C3%A9"
        );
    }

    #[test]
    fn hostile_values_cannot_leave_the_script() {
        let c = config(Input {
            brand_name: Some("</script><img src=x onerror=alert(1)>".into()),
            prefilled_message: Some("\u{2028}</SCRIPT>".into()),
            ..Input::default()
        });
        let s = snippet(&c);
        assert_eq!(s.to_lowercase().matches("</script").count(), 1, "{s}");
        assert!(!s.contains("<img"));
        assert!(!s.contains('\u{2028}'));
        assert!(!s.contains("innerHTML"));
    }

    #[test]
    fn values_are_checked() {
        let bad = |input: Input| configure("+919812345678", input).unwrap_err().to_string();
        assert!(
            bad(Input {
                background_color: Some("red;position:absolute".into()),
                ..Input::default()
            })
            .contains("colour")
        );
        assert!(
            bad(Input {
                margin_bottom: Some(-1),
                ..Input::default()
            })
            .contains("pixels")
        );
        assert!(
            bad(Input {
                brand_image_url: Some("javascript:alert(1)".into()),
                ..Input::default()
            })
            .contains("http")
        );
        assert!(
            bad(Input {
                overrides: vec![Override {
                    url: "pricing".into(),
                    prefilled_message: None,
                    on_screen_message: None,
                    cta_text: None,
                }],
                ..Input::default()
            })
            .contains("path")
        );
        assert!(
            bad(Input {
                cta_text: Some("  ".into()),
                ..Input::default()
            })
            .contains("blank")
        );
    }
}
