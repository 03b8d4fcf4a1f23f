//! The duplicate review page (`/ui/duplicates`) over real HTTP shows the
//! whole queue, strongest first, a page at a time: with more open reviews
//! than one store page (500), the strongest — stored last, so on a later
//! store page — heads the first page, and walking the pages shows every
//! review once, in falling order of score, probable and possible told apart;
//! a page number that is not one is a 400 saying so.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::Env;
use crate::ui::{browser, sign_in};

const REVIEWS: usize = 620;
const OPEN_REVIEWS: &str = "Task?code=https://fhir.wardline.invalid/CodeSystem/task|duplicate-review\
                            &status=requested,received,accepted,in-progress";

fn review(k: usize, a: &str, b: &str, score: f64) -> Value {
    let band = if score >= 0.8 { "probable" } else { "possible" };
    json!({"resourceType": "Task", "id": format!("dq{k:04}"), "status": "requested", "intent": "proposal",
        "identifier": [{"system": "https://fhir.wardline.invalid/Id/duplicate-pair", "value": format!("{a}:{b}:{k}")}],
        "code": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/task", "code": "duplicate-review"}]},
        "businessStatus": {"coding": [{"system": "https://fhir.wardline.invalid/CodeSystem/duplicate-score",
                                       "code": format!("{:04}", (score * 1000.0).round() as u32)}]},
        "focus": {"reference": format!("Patient/{a}")},
        "input": [
            {"type": {"text": "other patient"}, "valueReference": {"reference": format!("Patient/{b}")}},
            {"type": {"text": "match score"}, "valueDecimal": score},
            {"type": {"text": "match band"}, "valueCode": band},
            {"type": {"text": "reason"}, "valueString": "same date of birth"}]})
}

/// The value of every `attr="…"` on the page, in order.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
        .collect()
}

fn run(env: Env) {
    let s = env.start_with(&["--demo"]);
    let already = s.count(OPEN_REVIEWS) as usize;
    let mut entries = Vec::new();
    let ids: Vec<String> = (0..30).map(|i| format!("dqp{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        entries.push(json!({"resource": {"resourceType": "Patient", "id": id, "active": true,
            "name": [{"use": "official", "family": format!("Queue{}", (b'a' + i as u8) as char), "given": ["Test"]}],
            "birthDate": format!("19{:02}-01-01", 30 + i)},
            "request": {"method": "PUT", "url": format!("Patient/{id}")}}));
    }
    // Scores in an order unrelated to the order stored; the strongest last.
    for k in 0..REVIEWS {
        let score = if k == REVIEWS - 1 {
            0.999
        } else {
            0.2 + ((k * 7919) % 790) as f64 / 1000.0
        };
        let t = review(k, &ids[k % 30], &ids[(k / 30 + k + 1) % 30], score);
        let url = format!("Task/{}", t["id"].as_str().unwrap());
        entries.push(json!({"resource": t, "request": {"method": "PUT", "url": url}}));
    }
    let r = s.post(
        "",
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    );
    assert_eq!(r.status, 200, "{}", r.brief());
    let total = already + REVIEWS;
    assert_eq!(s.count(OPEN_REVIEWS) as usize, total);

    let root = s.root.clone();
    let clerk = browser();
    sign_in(&env, &root, &clerk, "clerk.watford");
    let mut seen: Vec<(String, f64, String)> = Vec::new();
    let mut page = 1;
    loop {
        let r = clerk
            .get(format!("{root}/ui/duplicates?page={page}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().unwrap();
        let scores = attrs(&html, "data-score");
        let bands = attrs(&html, "data-band");
        let tasks: Vec<String> = attrs(&html, "action")
            .into_iter()
            .filter_map(|a| {
                a.strip_prefix("/ui/duplicates/")
                    .and_then(|t| t.strip_suffix("/dismiss"))
                    .map(str::to_owned)
            })
            .collect();
        if page == 1 {
            assert_eq!(
                tasks.first(),
                Some(&format!("dq{:04}", REVIEWS - 1)),
                "the strongest review heads the first page"
            );
            assert!(
                html.contains(&format!("{total} open reviews.")),
                "the page says how many are open"
            );
        }
        assert_eq!(scores.len(), tasks.len());
        assert_eq!(bands.len(), tasks.len());
        assert!(tasks.len() <= 50);
        for ((t, sc), b) in tasks.into_iter().zip(scores).zip(bands) {
            seen.push((t, sc.parse().unwrap(), b));
        }
        if !html.contains("rel=\"next\"") {
            break;
        }
        page += 1;
        assert!(page < 100, "the pages do not end");
    }
    let mine: Vec<&(String, f64, String)> = seen.iter().filter(|s| s.0.starts_with("dq")).collect();
    assert_eq!(mine.len(), REVIEWS, "every review is shown");
    let unique: HashSet<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(unique.len(), seen.len(), "none shown twice");
    assert!(
        mine.windows(2).all(|w| w[0].1 >= w[1].1),
        "strongest first across the pages"
    );
    for (_, score, band) in &mine {
        let want = if *score >= 0.8 {
            "probable"
        } else {
            "possible"
        };
        assert_eq!(band, want, "{score}");
    }
    assert!(mine.iter().any(|m| m.2 == "possible"));
    // A page that is not a page is a clear 400, not an empty queue.
    for bad in ["0", "two", "-1"] {
        let r = clerk
            .get(format!("{root}/ui/duplicates?page={bad}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "page={bad}");
        assert!(r.text().unwrap().contains("There is no such page"));
    }
}

#[test]
fn duplicate_queue_sqlite() {
    run(Env::sqlite());
}

#[test]
fn duplicate_queue_postgres() {
    let Some(env) = Env::postgres() else { return };
    run(env);
}
