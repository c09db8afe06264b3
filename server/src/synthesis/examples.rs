//! The dataset's own knowledge, shown to the SQL-writing model: the verified
//! examples (question → SQL) nearest the question, ranked lexically (BM25 over the
//! example questions, English stemming and stop words), and the business terms the
//! question uses.

use bm25::{Document, Language, SearchEngineBuilder};

use crate::catalog::{Term, VerifiedExample};

/// The `count` examples whose questions share the most (rare) terms with
/// `question`, best first; none that shares no term.
pub fn nearest<'a>(question: &str, examples: &'a [VerifiedExample], count: usize) -> Vec<&'a VerifiedExample> {
    if examples.is_empty() || count == 0 {
        return Vec::new();
    }
    let documents: Vec<Document<usize>> =
        examples.iter().enumerate().map(|(i, e)| Document { id: i, contents: e.question.clone() }).collect();
    let engine = SearchEngineBuilder::<usize>::with_documents(Language::English, documents).build();
    let mut hits: Vec<(f32, usize)> =
        engine.search(question, examples.len()).into_iter().filter(|hit| hit.score > 0.0).map(|hit| (hit.score, hit.document.id)).collect();
    // Best first; ties in the file's order, so the prompt is the same every time.
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    hits.into_iter().take(count).map(|(_, id)| &examples[id]).collect()
}

/// The terms one of whose words (or phrases) the question uses, as a whole word,
/// allowing the common English endings (`gross` matches "grossed", "grosses").
pub fn used<'a>(question: &str, terms: &'a [Term]) -> Vec<&'a Term> {
    let text = format!(" {} ", normalize(question));
    terms
        .iter()
        .filter(|term| {
            term.words.iter().any(|word| {
                let word = normalize(word);
                !word.is_empty()
                    && ["", "s", "es", "ed", "d", "ing", "er", "ers"].iter().any(|end| text.contains(&format!(" {word}{end} ")))
            })
        })
        .collect()
}

/// Lower case, words separated by single spaces, punctuation dropped.
fn normalize(text: &str) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(question: &str) -> VerifiedExample {
        VerifiedExample { question: question.into(), sql: format!("-- {question}") }
    }

    #[test]
    fn the_example_sharing_the_questions_terms_comes_first() {
        let examples = [
            example("How many films per decade are in the dataset?"),
            example("Which Christopher Nolan film grossed the most?"),
            example("What is the average rating of Titanic's reviews?"),
            example("Which country made the most films?"),
        ];
        let picked = nearest("Which film directed by Steven Spielberg grossed the most?", &examples, 2);
        assert_eq!(picked[0].question, "Which Christopher Nolan film grossed the most?", "{picked:?}");
        let picked = nearest("average review rating for Inception", &examples, 1);
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].question, "What is the average rating of Titanic's reviews?");
        assert!(nearest("zebra quantum", &examples, 3).is_empty(), "nothing shared, nothing shown");
        assert!(nearest("films", &[], 3).is_empty());
    }

    #[test]
    fn terms_match_whole_words_with_their_endings() {
        let terms = [
            Term { words: vec!["gross".into(), "box office".into()], means: "movies.box_office_usd_millions".into() },
            Term { words: vec!["runtime".into()], means: "movies.runtime_minutes".into() },
        ];
        let means = |q: &str| used(q, &terms).iter().map(|t| t.means.clone()).collect::<Vec<_>>();
        assert_eq!(means("Which Nolan film grossed the most?"), ["movies.box_office_usd_millions"]);
        assert_eq!(means("Top 3 at the Box-Office"), ["movies.box_office_usd_millions"]);
        assert!(means("a grossly long film").is_empty(), "a word inside another word is not the term");
        assert_eq!(means("runtimes of westerns").len(), 1);
    }
}
