/// `schema.graphql` is the contract frontends code against: it must be what the code serves.
/// Regenerate with `cargo run -p parley-api --bin export-schema > schema.graphql`.
#[test]
fn the_checked_in_schema_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let current = parley_api::graphql::sdl();
    assert!(
        checked_in == current,
        "schema.graphql is stale: run `cargo run -p parley-api --bin export-schema > schema.graphql`"
    );
}
