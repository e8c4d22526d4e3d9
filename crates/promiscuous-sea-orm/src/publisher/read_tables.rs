//! The tables an SQL `SELECT` reads, from its text: a small tokeniser (identifiers quoted with
//! `"` or `` ` `` or not, string literals, comments, punctuation) and the names it finds after
//! `FROM` and `JOIN`, at any depth. Used by read tracking ([`tracked`](super::tracked)), which
//! sees only the text SeaORM built.
//!
//! Listing a table the statement does not read costs little (its rows fail to decode as that
//! model); missing one loses a read dependency. So every name after `FROM`/`JOIN` counts,
//! including a `WITH` clause's name, and the comma lists of `FROM a, b` are followed.

/// One token of SQL text.
#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    /// An unquoted identifier or keyword (or a number).
    Word(&'a str),
    /// A quoted identifier, unquoted (`""` and ``` `` ``` undoubled).
    Quoted(String),
    /// A string literal (its content does not matter).
    Literal,
    /// Any other character: `.`, `,`, `(`, `)`, operators.
    Punct(char),
}

/// Splits `sql` into tokens, leaving out whitespace and comments.
fn tokenise(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'\'' => {
                i = closing(bytes, i, b'\'').0;
                tokens.push(Token::Literal);
            }
            b'"' | b'`' => {
                let (end, terminated) = closing(bytes, i, c);
                let inner = &sql[i + 1..if terminated { end - 1 } else { end }];
                let quote = c as char;
                tokens.push(Token::Quoted(
                    inner.replace(&format!("{quote}{quote}"), &quote.to_string()),
                ));
                i = end;
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                tokens.push(Token::Word(&sql[start..i]));
            }
            _ => {
                tokens.push(Token::Punct(c as char));
                i += 1;
            }
        }
    }
    tokens
}

/// The index just past the quoted text opened at `open` (a doubled quote stays inside), and
/// whether it was closed (an unterminated one runs to the end).
fn closing(bytes: &[u8], open: usize, quote: u8) -> (usize, bool) {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return (i + 1, true);
        }
        i += 1;
    }
    (bytes.len(), false)
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

/// Words that end a table reference's alias part in a `FROM` list.
const CLAUSES: &[&str] = &[
    "where",
    "group",
    "order",
    "having",
    "limit",
    "offset",
    "fetch",
    "for",
    "window",
    "union",
    "except",
    "intersect",
    "on",
    "using",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "straight_join",
    "returning",
    "select",
];

/// The identifier part of a token, if it is one.
fn name(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        Some(Token::Quoted(q)) => Some(q.to_ascii_lowercase()),
        _ => None,
    }
}

/// The tables (lower-cased, without their schema) that `sql` reads, if it is a `SELECT` (or a
/// `WITH ... SELECT`); empty for any other statement (an `INSERT`, `UPDATE` or `DELETE` with
/// `RETURNING` returns rows it writes, not reads).
pub(super) fn read_tables(sql: &str) -> Vec<String> {
    let tokens = tokenise(sql);
    let first = tokens.iter().find(|t| **t != Token::Punct('('));
    if !is_keyword(first, "select") && !is_keyword(first, "with") {
        return Vec::new();
    }
    let mut scan = Scan {
        tokens: &tokens,
        depth: 0,
        resume: Vec::new(),
        tables: Vec::new(),
    };
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        i += 1;
        match token {
            Token::Punct('(') => scan.depth += 1,
            Token::Punct(')') => {
                scan.depth = scan.depth.saturating_sub(1);
                if scan.resume.last() == Some(&scan.depth) {
                    // The end of a subquery in a FROM list: its alias, maybe more references.
                    scan.resume.pop();
                    i = scan.references(i, true);
                }
            }
            _ if is_keyword(Some(token), "from") || is_keyword(Some(token), "join") => {
                i = scan.references(i, false);
            }
            _ => {}
        }
    }
    let mut tables = scan.tables;
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// The state of [`read_tables`]' single pass over the tokens.
struct Scan<'t, 'a> {
    tokens: &'t [Token<'a>],
    /// Parentheses open at the current token.
    depth: usize,
    /// The depths at which a parenthesised item of a FROM list closes (the list goes on after).
    resume: Vec<usize>,
    tables: Vec<String>,
}

impl Scan<'_, '_> {
    /// Reads the references of a FROM list (or a JOIN's one) from token `i`, `after` one already
    /// read; returns where the list ends, or where a subquery in it begins (the main loop scans
    /// the subquery, then comes back here at its closing parenthesis).
    fn references(&mut self, mut i: usize, mut after: bool) -> usize {
        let tokens = self.tokens;
        loop {
            if after {
                i = skip_alias(tokens, i);
                if tokens.get(i) != Some(&Token::Punct(',')) {
                    return i;
                }
                i += 1;
            }
            while is_keyword(tokens.get(i), "only") || is_keyword(tokens.get(i), "lateral") {
                i += 1;
            }
            if tokens.get(i) == Some(&Token::Punct('(')) {
                self.resume.push(self.depth);
                self.depth += 1;
                i += 1;
                let next = tokens.get(i);
                if is_keyword(next, "select") || is_keyword(next, "with") {
                    return i;
                }
                // A parenthesised join, `(a JOIN b ON ..)`: a reference list of its own.
                after = false;
                continue;
            }
            let Some(mut table) = name(tokens.get(i)) else {
                return i;
            };
            i += 1;
            // schema.table (or catalog.schema.table): the last part names the table.
            while tokens.get(i) == Some(&Token::Punct('.')) {
                match name(tokens.get(i + 1)) {
                    Some(part) => {
                        table = part;
                        i += 2;
                    }
                    None => break,
                }
            }
            self.tables.push(table);
            after = true;
        }
    }
}

/// Skips a reference's alias (with its column list) up to the next reference or clause.
fn skip_alias(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(token) = tokens.get(i) {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => break,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',' | ';') if depth == 0 => break,
            Token::Word(w) if depth == 0 && CLAUSES.iter().any(|c| w.eq_ignore_ascii_case(c)) => {
                break;
            }
            _ => {}
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(sql: &str) -> Vec<String> {
        read_tables(sql)
    }

    #[test]
    fn quoted_unquoted_and_schema_qualified_names() {
        assert_eq!(tables(r#"SELECT "users"."id" FROM "users""#), ["users"]);
        assert_eq!(tables("select id from users where id = 1"), ["users"]);
        assert_eq!(tables("SELECT * FROM Users"), ["users"]);
        assert_eq!(tables(r#"SELECT * FROM "public"."users""#), ["users"]);
        assert_eq!(tables("SELECT * FROM main.users AS u"), ["users"]);
        assert_eq!(tables(r#"SELECT * FROM "odd ""name""""#), [r#"odd "name""#]);
        assert_eq!(tables("SELECT * FROM `users`"), ["users"]);
        assert_eq!(tables("SELECT * FROM ONLY users"), ["users"]);
    }

    #[test]
    fn literals_comments_and_aliases_do_not_count() {
        assert_eq!(
            tables(r#"SELECT 'FROM posts' AS "posts" FROM "users" WHERE name = 'x'' FROM tags'"#),
            ["users"]
        );
        assert_eq!(
            tables("SELECT id -- FROM posts\n FROM users /* JOIN tags */"),
            ["users"]
        );
        assert_eq!(tables(r#"SELECT "posts"."id" AS "users" FROM x"#), ["x"]);
        assert!(tables("SELECT 1").is_empty());
    }

    #[test]
    fn joins_lists_and_subqueries() {
        assert_eq!(
            tables(
                r#"SELECT "a"."id" AS "A_id", "b"."id" AS "B_id" FROM "posts" AS "a"
                   LEFT JOIN "users" AS "b" ON "a"."user_id" = "b"."id"
                   INNER JOIN tags t USING (id)"#
            ),
            ["posts", "tags", "users"]
        );
        assert_eq!(
            tables("SELECT * FROM posts p, users AS u, tags WHERE p.a = u.b"),
            ["posts", "tags", "users"]
        );
        assert_eq!(
            tables("SELECT * FROM posts WHERE user_id IN (SELECT id FROM users) ORDER BY id"),
            ["posts", "users"]
        );
        assert_eq!(
            tables("SELECT (SELECT count(*) FROM tags), x FROM (SELECT * FROM users) AS s, posts"),
            ["posts", "tags", "users"]
        );
        assert_eq!(
            tables("WITH recent AS (SELECT * FROM posts) SELECT * FROM recent JOIN users ON 1=1"),
            ["posts", "recent", "users"]
        );
        assert_eq!(
            tables("SELECT * FROM a t(x, y), b; SELECT 1"),
            ["a", "b"],
            "an alias' column list"
        );
        assert_eq!(
            tables("(SELECT * FROM a) UNION (SELECT * FROM b)"),
            ["a", "b"]
        );
        assert_eq!(
            tables("SELECT * FROM (a JOIN b ON a.x = b.x), (SELECT 1 FROM c) s, d JOIN (e) ON 1"),
            ["a", "b", "c", "d", "e"],
            "parenthesised joins, and the list goes on after a subquery"
        );
    }

    #[test]
    fn only_selects_read() {
        assert!(tables(r#"DELETE FROM "users" RETURNING *"#).is_empty());
        assert!(tables(r#"INSERT INTO "users" SELECT * FROM x RETURNING *"#).is_empty());
        assert!(tables(r#"UPDATE "users" SET a = 1 FROM x RETURNING *"#).is_empty());
        assert!(tables("").is_empty());
        assert!(tables("é").is_empty());
        assert!(tables("SELECT * FROM \"unterminated").len() == 1);
        assert!(tables("SELECT 'unterminated FROM x").is_empty());
    }

    /// The statements SeaORM builds for the entity below, on every backend.
    mod seaorm {
        use sea_orm::entity::prelude::*;
        use sea_orm::{DbBackend, QueryTrait};

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "cakes", schema_name = "bakery")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}

        #[test]
        fn seaorm_selects_read_their_table() {
            for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
                let statements = [
                    Entity::find().build(backend),
                    Entity::find_by_id(7).build(backend),
                    Entity::find()
                        .filter(Column::Name.eq("FROM pies"))
                        .build(backend),
                ];
                for stmt in statements {
                    assert_eq!(super::tables(&stmt.to_string()), ["cakes"], "{stmt}");
                    assert_eq!(super::tables(&stmt.sql), ["cakes"], "{}", stmt.sql);
                }
            }
        }
    }
}
