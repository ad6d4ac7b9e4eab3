//! `Guid()` and `RandomNum()` are seeded per object: what they give an object depends on the
//! run's seed and the object alone, not on which objects a sync evaluated before it. So a
//! delta sync that processes one object gives it what a full sync gives it, and so will a
//! sync that evaluates objects in another order.

mod common;

use idflow::engine::Engine;
use idflow::engine::import::{ImportChange, ImportObject};
use idflow::engine::sync::Mode;
use idflow::value::Value;

const BUNDLE: &str = r#"
metaverse {
  object person {
    accountName string
    tag         string
    lucky       integer
  }
}

connector "hr" csv {
  object worker anchor id {
    id    string
    name  string
  }
}

inbound rule "In from HR" {
  connector "hr"
  source worker
  target person
  link provision
  precedence 1
  flow accountName <- [name]
  flow tag         <- Guid()
  flow lucky       <- RandomNum(1, 1000000)
}
"#;

fn engine() -> Engine {
    Engine::new(
        &common::bundle("random.idf", BUNDLE),
        idflow::testrun::test_now(),
    )
}

fn worker(id: &str, name: &str) -> ImportChange {
    ImportChange::Upsert(ImportObject {
        dn: format!("CN={id},OU=HR"),
        object_type: "worker".into(),
        attrs: vec![
            ("id".into(), Value::from(id)),
            ("name".into(), Value::from(name)),
        ],
    })
}

/// (accountName, tag, lucky) of every metaverse object.
fn people(e: &Engine) -> Vec<(Value, Value, Value)> {
    let t = &e.plan.metaverse[0];
    let slot = |n: &str| t.slot(n).unwrap();
    e.state
        .mv()
        .values()
        .map(|m| {
            (
                m.attrs[slot("accountName")].clone(),
                m.attrs[slot("tag")].clone(),
                m.attrs[slot("lucky")].clone(),
            )
        })
        .collect()
}

#[test]
fn an_object_gets_the_same_random_values_whatever_was_evaluated_before_it() {
    let hr = 0;
    let all: Vec<ImportChange> = (1..=5).map(|i| worker(&format!("{i}"), "x")).collect();
    let mut full = engine();
    full.import(hr, all.clone(), true);
    full.sync(Mode::Full);
    let once = people(&full);
    assert_eq!(once.len(), 5);
    let tags: std::collections::BTreeSet<String> =
        once.iter().map(|p| format!("{:?}", p.1)).collect();
    assert_eq!(tags.len(), 5, "every object its own Guid: {once:?}");
    // A delta sync that recomputes only the third object (its name changed) draws that
    // object's values again, not the next values of the run's sequence.
    let mut changed = all.clone();
    changed[2] = worker("3", "y");
    full.import(hr, changed, true);
    full.sync(Mode::Delta);
    let after = people(&full);
    assert_eq!(after[2].0, Value::from("y"));
    assert_eq!((&after[2].1, &after[2].2), (&once[2].1, &once[2].2));
    assert_eq!(after[..2], once[..2]);
    assert_eq!(after[3..], once[3..]);
    // A second full sync gives every object what the first gave it.
    full.sync(Mode::Full);
    let again = people(&full);
    for (a, b) in again.iter().zip(&after) {
        assert_eq!((&a.1, &a.2), (&b.1, &b.2));
    }
}
