//! Turning a guest's WIT task descriptions into the host's [`TaskSpec`]s, checking them on the way:
//! a guest's description is input the host does not trust.

use std::collections::HashSet;

use crate::bindings::types as wit;
use crate::spec::{CachePolicy, CacheScope, CacheVersion, RetryPolicy, TaskSpec};
use crate::values::types::{Param, TableNode};
use crate::values::{Interface, TypeDesc, ValueError};

/// Longest task or parameter name accepted.
pub const MAX_NAME_LEN: usize = 128;

fn table_node(node: &wit::TypeNode) -> TableNode {
    use wit::TypeNode as N;
    match node {
        N::None => TableNode::None,
        N::Bool => TableNode::Bool,
        N::Int => TableNode::Int,
        N::Float => TableNode::Float,
        N::String => TableNode::String,
        N::Bytes => TableNode::Bytes,
        N::Datetime => TableNode::Datetime,
        N::Duration => TableNode::Duration,
        N::List(i) => TableNode::List(*i),
        N::Map(i) => TableNode::Map(*i),
        N::Record(fields) => {
            TableNode::Record(fields.iter().map(|f| (f.name.clone(), f.ty)).collect())
        }
        N::Enum(variants) => TableNode::Enum(variants.clone()),
        N::Optional(i) => TableNode::Optional(*i),
        N::Union(members) => TableNode::Union(members.clone()),
        N::File(f) => TableNode::File {
            format: f.format.clone(),
        },
        N::Dir => TableNode::Dir,
        N::Dataframe(f) => TableNode::DataFrame {
            format: f.format.clone(),
            columns: f.columns.clone(),
        },
    }
}

pub(crate) fn check_name(name: &str, what: &str) -> Result<(), ValueError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ValueError::Descriptor {
            what: what.to_string(),
            message: format!(
                "name {name:?} must be 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.'"
            ),
        })
    }
}

fn params(
    nodes: &[TableNode],
    given: &[wit::Param],
    task: &str,
    side: &str,
) -> Result<Vec<Param>, ValueError> {
    let mut seen = HashSet::new();
    given
        .iter()
        .map(|p| {
            let what = format!("task {task}: {side}.{}", p.name);
            check_name(&p.name, &what)?;
            if !seen.insert(p.name.as_str()) {
                return Err(ValueError::Descriptor {
                    what,
                    message: "declared twice".to_string(),
                });
            }
            Ok(Param {
                name: p.name.clone(),
                doc: p.doc.clone(),
                ty: TypeDesc::from_table(nodes, p.ty, &what)?,
            })
        })
        .collect()
}

pub(crate) fn spec_from_wit(spec: wit::TaskSpec) -> Result<TaskSpec, ValueError> {
    check_name(&spec.name, "task")?;
    let nodes: Vec<TableNode> = spec.types.iter().map(table_node).collect();
    let interface = Interface {
        inputs: params(&nodes, &spec.inputs, &spec.name, "inputs")?,
        outputs: params(&nodes, &spec.outputs, &spec.name, "outputs")?,
    };
    let version = match spec.cache.version {
        wit::CacheVersion::Disable => CacheVersion::Disable,
        wit::CacheVersion::Auto => CacheVersion::Auto,
        wit::CacheVersion::Override(value) => CacheVersion::Override { value },
    };
    for ignored in &spec.cache.ignored_inputs {
        if !interface.inputs.iter().any(|p| &p.name == ignored) {
            return Err(ValueError::Descriptor {
                what: format!("task {}: cache.ignored-inputs", spec.name),
                message: format!("{ignored:?} is not an input of the task"),
            });
        }
    }
    Ok(TaskSpec {
        interface_hash: interface.hash(),
        name: spec.name,
        doc: spec.doc,
        interface,
        cache: CachePolicy {
            version,
            ignored_inputs: spec.cache.ignored_inputs,
            serialize: spec.cache.serialize,
            max_age_ms: spec.cache.max_age_ms,
            scope: match spec.cache.scope {
                wit::CacheScope::ProjectDomain => CacheScope::ProjectDomain,
                wit::CacheScope::Global => CacheScope::Global,
            },
        },
        retry: RetryPolicy {
            retries: spec.retry.retries,
            backoff_ms: spec.retry.backoff_ms,
        },
        timeout_ms: spec.timeout_ms,
        inline_limit_bytes: spec.inline_limit_bytes,
        memory_limit_bytes: spec.memory_limit_bytes,
    })
}
