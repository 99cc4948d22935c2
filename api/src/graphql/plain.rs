//! A synchronous path for objects whose selected fields are all values already in memory.
//!
//! async-graphql resolves every field of every object as its own boxed future, joins them
//! and merges the answers into a map: a contacts page of 50 with their tags and attribute
//! values is about 800 such futures, and they cost more of the server's time than the
//! page's SQL. When a selection is made only of plain fields (no fragments, no directives,
//! no arguments) that the type can answer from memory, the value is built directly instead.
//! Any other selection takes async-graphql's own path, so the answer is the same either way.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::resolve_list;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// A type some of whose fields can be answered without async-graphql's executor.
pub trait PlainFields {
    /// The value of `field` (its name; its sub-selection for objects and lists), or `None`
    /// when the field needs the executor (a loader, the context, a possible error).
    fn plain_field(&self, field: &Field) -> Option<Value>;
}

/// `item` as the object `selection` asks for, or `None` when any part of the selection
/// needs the executor.
pub fn object<T: PlainFields>(
    item: &T,
    type_name: &str,
    selection: &SelectionSet,
) -> Option<Value> {
    let mut map = IndexMap::with_capacity(selection.items.len());
    for selection in &selection.items {
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() || !field.arguments.is_empty() {
            return None;
        }
        let value = if field.name.node == "__typename" {
            Value::String(type_name.to_owned())
        } else {
            item.plain_field(field)?
        };
        // A key selected twice keeps its first position, as the executor's merge does.
        map.insert(field.response_key().node.clone(), value);
    }
    Some(Value::Object(map))
}

/// Every one of `items` as `selection` asks for, or `None` as soon as one needs the executor.
pub fn list<T: PlainFields + OutputType>(items: &[T], selection: &SelectionSet) -> Option<Value> {
    let type_name = T::type_name();
    items
        .iter()
        .map(|item| object(item, &type_name, selection))
        .collect::<Option<Vec<_>>>()
        .map(Value::List)
}

/// A list field (`[T!]!`) that takes the plain path when it can.
pub struct PlainList<'a, T>(pub &'a [T]);

impl<T: PlainFields + OutputType> OutputType for PlainList<'_, T> {
    fn type_name() -> Cow<'static, str> {
        <&[T] as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <&[T] as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <&[T] as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match list(self.0, &field.node.selection_set.node) {
            Some(value) => Ok(value),
            None => resolve_list(ctx, field, self.0.iter(), Some(self.0.len())).await,
        }
    }
}

/// The value of a scalar as the executor would give it.
pub fn scalar<T: async_graphql::ScalarType>(value: &T) -> Value {
    value.to_value()
}

/// A nullable value, each present one converted by `to`.
pub fn nullable<T>(value: Option<T>, to: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, to)
}
