//! `emod eval`'s arithmetic (`eval::metrics`) on a table computed by hand: accuracy, per-class
//! recall / precision / F1 / support, macro-F1 and the confusion matrix (`confusion[true][predicted]`).
//! A transposed confusion, recall and precision swapped, or a macro-F1 averaged over the wrong
//! classes each fail. tests/emod/cli_analyze.rs checks the same table through `emod eval faces`.

use emo_api_types::Emotion;
use emo_inference::eval::metrics;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// (true, predicted) over the 7 face labels (angry 0, disgust 1, fear 2, happy 3, sad 4,
/// surprise 5, neutral 6):
///
/// ```text
///               predicted
/// true      angry happy sad neutral   support
/// angry       3     1    .    .          4
/// happy       .     2    .    .          2
/// sad         1     .    1    1          3
/// ```
/// 9 in all, 6 right: accuracy 2/3.
/// angry:   recall 3/4, precision 3/4 (3 of 4 predicted angry), F1 3/4.
/// happy:   recall 2/2, precision 2/3, F1 = 2·1·(2/3) / (5/3) = 4/5.
/// sad:     recall 1/3, precision 1/1, F1 = 2·(1/3) / (4/3) = 1/2.
/// neutral: no support, predicted once: precision 0, F1 0; not in the macro average.
/// macro-F1 over the classes with support: (3/4 + 4/5 + 1/2) / 3 = 41/60.
const PAIRS: [(usize, usize); 9] = [
    (0, 0),
    (0, 0),
    (0, 0),
    (0, 3),
    (3, 3),
    (3, 3),
    (4, 0),
    (4, 4),
    (4, 6),
];

#[test]
fn metrics_of_a_hand_computed_table() {
    let r = metrics(&Emotion::FACE, &PAIRS, 1);
    assert_eq!(r.n, 9);
    assert_eq!(r.skipped, 1);
    assert!(close(r.accuracy, 6.0 / 9.0), "{}", r.accuracy);
    assert_eq!(
        r.confusion,
        vec![
            vec![3, 0, 0, 1, 0, 0, 0],
            vec![0; 7],
            vec![0; 7],
            vec![0, 0, 0, 2, 0, 0, 0],
            vec![1, 0, 0, 0, 1, 0, 1],
            vec![0; 7],
            vec![0; 7],
        ],
        "rows are the true class, columns the predicted one"
    );
    assert!(close(r.macro_f1, 41.0 / 60.0), "{}", r.macro_f1);
    assert_eq!(
        r.labels,
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    );
    // (recall, precision, F1, support)
    let want = [
        ("angry", 0.75, 0.75, 0.75, 4),
        ("happy", 1.0, 2.0 / 3.0, 0.8, 2),
        ("sad", 1.0 / 3.0, 1.0, 0.5, 3),
        ("neutral", 0.0, 0.0, 0.0, 0),
        ("disgust", 0.0, 0.0, 0.0, 0),
        ("fear", 0.0, 0.0, 0.0, 0),
        ("surprise", 0.0, 0.0, 0.0, 0),
    ];
    assert_eq!(r.per_class.len(), 7);
    for (class, recall, precision, f1, n) in want {
        let c = &r.per_class[class];
        assert!(
            close(c.recall, recall) && close(c.precision, precision) && close(c.f1, f1) && c.n == n,
            "{class}: {c:?}, want recall {recall} precision {precision} F1 {f1} n {n}"
        );
    }
    // The table prints the same figures, rounded to 4 places, and the confusion row by row.
    let table = r.to_table();
    for line in [
        "n = 9 (1 unreadable files skipped)",
        "accuracy  0.6667",
        "macro-F1  0.6833",
        "happy       1.0000    0.6667  0.8000      2",
        "sad         0.3333    1.0000  0.5000      3",
        "sad               1        0        0        0        1        0        1",
    ] {
        assert!(
            table.lines().any(|l| l == line),
            "no line {line:?} in\n{table}"
        );
    }
}

#[test]
fn a_perfect_and_an_empty_table() {
    let r = metrics(&Emotion::FACE, &[(3, 3), (4, 4), (4, 4)], 0);
    assert!(close(r.accuracy, 1.0) && close(r.macro_f1, 1.0), "{r:?}");
    let r = metrics(&Emotion::FACE, &[], 2);
    assert_eq!((r.n, r.skipped), (0, 2));
    assert!(close(r.accuracy, 0.0) && close(r.macro_f1, 0.0), "{r:?}");
}
