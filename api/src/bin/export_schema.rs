//! Prints the GraphQL SDL; `cargo run -p parley-api --bin export-schema > schema.graphql`.

fn main() {
    print!("{}", parley_api::graphql::sdl());
}
