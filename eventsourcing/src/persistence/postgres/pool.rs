//! The connection pool: r2d2 over the blocking `postgres` client, with a per-connection cache
//! of prepared statements (each statement is parsed and planned once per connection, not on
//! every call).

use std::collections::HashMap;

use postgres::{Client, NoTls, Statement};

/// A pooled connection and its prepared statements, keyed by SQL text.
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// The client and the prepared statement for `sql`, preparing it on first use.
    pub(super) fn prepared(
        &mut self,
        sql: &str,
    ) -> Result<(&mut Client, Statement), postgres::Error> {
        let statement = match self.statements.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql)?;
                self.statements.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        Ok((&mut self.client, statement))
    }
}

type Params<'a> = &'a [&'a (dyn postgres::types::ToSql + Sync)];

impl Conn {
    /// Runs a prepared statement expecting exactly one row.
    pub(super) fn prepared_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<postgres::Row, postgres::Error> {
        let (client, statement) = self.prepared(sql)?;
        client.query_one(&statement, params)
    }

    /// Runs a prepared statement expecting at most one row.
    pub(super) fn prepared_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<postgres::Row>, postgres::Error> {
        let (client, statement) = self.prepared(sql)?;
        client.query_opt(&statement, params)
    }

    /// Runs a prepared statement, returning the number of rows affected.
    pub(super) fn prepared_execute(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let (client, statement) = self.prepared(sql)?;
        client.execute(&statement, params)
    }
}

/// Opens connections from a parsed driver configuration.
#[derive(Debug)]
pub(super) struct Manager {
    pub(super) config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
