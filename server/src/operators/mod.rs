//! The LLM operators' contract, in one place: which operators exist, how each sees
//! its input ([`Kind`]), what it takes besides its template ([`OwnArgument`]), the SQL
//! type it returns ([`AnswerType`]), its reference text for the synthesis prompt, its
//! prompt, the grammar its answer must follow and the strict parser that reads the
//! answer. [`call`] is the one encoding of an operator call as DuckDB arguments: the
//! SQL front end (`sql/`) writes it and the executor (`execution/`) reads it.
//!
//! Adding an operator is one variant here, with its entries in the tables below,
//! its prompt in [`prompts`], and, for a new [`Kind`], its evaluation in `execution/`.

pub mod call;
pub mod prompts;
pub mod template;

use crate::llm::Constraint;

/// The LLM operators of the SQL surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    Filter,
    Map,
    Classify,
    Score,
    Reduce,
    Rank,
    Knowledge,
}

/// How an operator sees its input, and so how it is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One call per row, on the row's fields: its distinct inputs can be listed
    /// before the query runs (`sql::collect`) and answered in one order.
    RowWise,
    /// One call per group, on a LIST of values (`list(col)`), in parts or windows.
    Group,
    /// No row data: one answer per query.
    Constant,
}

/// What a call takes between its template and the row's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnArgument {
    None,
    /// The labels to choose from: `['a', 'b']` or `'a, b'`.
    Labels,
    /// The group's values: `list(col)`.
    List,
}

/// The SQL type of an operator's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerType {
    Boolean,
    Text,
    Number,
    TextList,
}

/// One model answer, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Boolean(bool),
    Text(String),
    Number(f64),
    /// A ranking of a window's items: their indices, best first.
    Order(Vec<usize>),
    /// A whole list, ranked (what `llm_rank` returns).
    TextList(Vec<String>),
}

/// What one request to the model is about: the call's template, its labels (for
/// `llm_classify`), the data block and the number of numbered items in it.
pub struct Request<'a> {
    pub template: &'a str,
    pub labels: &'a [String],
    pub data: &'a str,
    pub items: usize,
}

impl Operator {
    pub const ALL: [Operator; 7] = [
        Operator::Filter,
        Operator::Map,
        Operator::Classify,
        Operator::Score,
        Operator::Reduce,
        Operator::Rank,
        Operator::Knowledge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Filter => "llm_filter",
            Operator::Map => "llm_map",
            Operator::Classify => "llm_classify",
            Operator::Score => "llm_score",
            Operator::Reduce => "llm_reduce",
            Operator::Rank => "llm_rank",
            Operator::Knowledge => "llm_knowledge",
        }
    }

    /// The operator a function name (any case) calls.
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name().eq_ignore_ascii_case(name))
    }

    pub fn kind(self) -> Kind {
        match self {
            Operator::Filter | Operator::Map | Operator::Classify | Operator::Score => Kind::RowWise,
            Operator::Reduce | Operator::Rank => Kind::Group,
            Operator::Knowledge => Kind::Constant,
        }
    }

    pub fn own_argument(self) -> OwnArgument {
        match self {
            Operator::Classify => OwnArgument::Labels,
            Operator::Reduce | Operator::Rank => OwnArgument::List,
            Operator::Filter | Operator::Map | Operator::Score | Operator::Knowledge => OwnArgument::None,
        }
    }

    pub fn answer_type(self) -> AnswerType {
        match self {
            Operator::Filter => AnswerType::Boolean,
            Operator::Score => AnswerType::Number,
            Operator::Rank => AnswerType::TextList,
            Operator::Map | Operator::Classify | Operator::Reduce | Operator::Knowledge => AnswerType::Text,
        }
    }

    /// What it returns, as the synthesis prompt says it.
    pub fn returns(self) -> &'static str {
        match self {
            Operator::Filter => "BOOLEAN",
            Operator::Map | Operator::Reduce | Operator::Knowledge => "VARCHAR",
            Operator::Classify => "VARCHAR (one of the labels)",
            Operator::Score => "DOUBLE in 0..1",
            Operator::Rank => "VARCHAR[] (the list, reordered)",
        }
    }

    /// What it is for, as the synthesis prompt says it.
    pub fn meaning(self) -> &'static str {
        match self {
            Operator::Filter => "true when the statement holds for the row (world knowledge or reading text)",
            Operator::Map => "free text per row: extract, rewrite, translate, answer about the row",
            Operator::Classify => "one label out of a fixed list for the row",
            Operator::Score => "graded relevance; ORDER BY it DESC LIMIT k for top-k",
            Operator::Reduce => "one text over a group of values, e.g. a summary",
            Operator::Rank => "orders a list by a criterion, best first",
            Operator::Knowledge => "one world-knowledge fact, asked once per query",
        }
    }

    /// A correct call, for the synthesis prompt and error messages.
    pub fn example(self) -> &'static str {
        match self {
            Operator::Filter => "SELECT title FROM movies WHERE genres LIKE '%Romance%' AND llm_filter('{title} is considered a classic')",
            Operator::Map => "SELECT title, llm_map('The country where {title} is mainly set') AS country FROM movies LIMIT 10",
            Operator::Classify => "SELECT llm_classify('Sentiment of {review_text}', ['positive', 'negative', 'mixed']) AS sentiment, count(*) FROM reviews GROUP BY 1",
            Operator::Score => "SELECT title FROM movies ORDER BY llm_score('How family-friendly is {title}') DESC LIMIT 5",
            Operator::Reduce => "SELECT m.title, llm_reduce('Summarize the reviews', list(r.review_text)) FROM movies m JOIN reviews r USING (movie_id) WHERE m.title = 'Titanic' GROUP BY m.title",
            Operator::Rank => "SELECT llm_rank('most romantic first', list(title)) FROM movies WHERE year < 1960",
            Operator::Knowledge => "SELECT title FROM movies WHERE director = llm_knowledge('Who directed Jaws? Answer with the name only.')",
        }
    }

    /// The user prompt of one request (the system text is [`prompts::SYSTEM`]).
    pub fn prompt(self, request: &Request) -> String {
        let Request { template, labels, data, items } = *request;
        match self {
            Operator::Filter => prompts::filter(template, data),
            Operator::Map => prompts::map(template, data),
            Operator::Classify => prompts::classify(template, labels, data),
            Operator::Score => prompts::score(template, data),
            Operator::Reduce => prompts::reduce(template, data),
            Operator::Rank => prompts::rank(template, items, data),
            Operator::Knowledge => prompts::knowledge(template, data),
        }
    }

    /// The form the answer must take: the grammar of backends that can constrain
    /// decoding, and what [`Operator::parse`] accepts.
    pub fn constraint(self, request: &Request) -> Option<Constraint> {
        match self {
            Operator::Filter => Some(Constraint::YesNo),
            Operator::Classify => Some(Constraint::OneOf(request.labels.to_vec())),
            Operator::Score => Some(Constraint::UnitScore),
            Operator::Rank => Some(Constraint::NumberList),
            Operator::Map | Operator::Reduce | Operator::Knowledge => None,
        }
    }

    /// Reads an answer strictly: `None` when it does not have the required form
    /// (the result is then NULL, never a silent "yes").
    pub fn parse(self, answer: &str, request: &Request) -> Option<Answer> {
        match self {
            Operator::Filter => prompts::parse_yes_no(answer).map(Answer::Boolean),
            Operator::Classify => prompts::parse_label(answer, request.labels).map(Answer::Text),
            Operator::Score => prompts::parse_score(answer).map(Answer::Number),
            Operator::Rank => prompts::parse_ranking(answer, request.items).map(Answer::Order),
            Operator::Map | Operator::Reduce => Some(Answer::Text(answer.trim().to_string())),
            Operator::Knowledge => Some(Answer::Text(answer.trim().trim_end_matches('.').trim().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_resolve_back() {
        for op in Operator::ALL {
            assert_eq!(Operator::from_name(op.name()), Some(op));
            assert_eq!(Operator::from_name(&op.name().to_uppercase()), Some(op));
            assert!(op.example().contains(op.name()), "{op:?}'s example calls it");
        }
        assert_eq!(Operator::from_name("llm_nothing"), None);
    }

    #[test]
    fn answers_are_parsed_by_the_operator_strictly() {
        let labels = vec!["positive".to_string(), "negative".to_string()];
        let request = Request { template: "t", labels: &labels, data: "", items: 3 };
        assert_eq!(Operator::Filter.parse("Yes.", &request), Some(Answer::Boolean(true)));
        assert_eq!(Operator::Filter.parse("maybe", &request), None);
        assert_eq!(Operator::Classify.parse("Negative", &request), Some(Answer::Text("negative".into())));
        assert_eq!(Operator::Score.parse("1.5", &request), None);
        assert_eq!(Operator::Rank.parse("3, 1", &request), Some(Answer::Order(vec![2, 0, 1])));
        assert_eq!(Operator::Knowledge.parse(" Paris. ", &request), Some(Answer::Text("Paris".into())));
        assert_eq!(Operator::Classify.constraint(&request), Some(Constraint::OneOf(labels.clone())));
    }
}
