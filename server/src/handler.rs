//! pgwire handlers: startup, simple query, extended query and COPY.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::StartupHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::send_execution_response;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type, DEFAULT_NAME,
    METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{Bind, BindComplete, Execute, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio::sync::{Mutex, OwnedSemaphorePermit};

use freshet_planner::copy::CopyIn;
use freshet_planner::names::DATABASE;
use freshet_planner::{CommandTag, Engine, Output, Plan, PlannerError, Session};

use crate::errors::{error_info, pg_error, simple};
use crate::gate::Gate;
use crate::wire;

/// Per-connection state, kept in pgwire's session extensions.
struct Conn {
    session: Session,
    /// An in-progress `COPY FROM STDIN`, and the first error it hit.
    copy: Option<Box<CopyIn>>,
    copy_error: Option<PlannerError>,
}

fn conn<C: ClientInfo>(client: &C) -> Arc<Mutex<Conn>> {
    let user = client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_else(|| "freshet".into());
    client.session_extensions().get_or_insert_with(|| {
        Mutex::new(Conn {
            session: Session::new(user),
            copy: None,
            copy_error: None,
        })
    })
}

pub struct Handlers {
    engine: Arc<Engine>,
    inner: Arc<Handler>,
    startup: Arc<Startup>,
}

impl Handlers {
    pub fn new(engine: Arc<Engine>, gate: Arc<Gate>) -> Self {
        let inner = Arc::new(Handler {
            engine: engine.clone(),
            gate,
            parser: Arc::new(Parser {
                engine: engine.clone(),
            }),
        });
        Handlers {
            engine,
            inner,
            startup: Arc::new(Startup),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.inner.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.inner.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        let _ = &self.engine;
        self.inner.clone()
    }
}

/// Accepts any user without a password (loopback deployments; password
/// authentication comes later) and the one database, `freshet`.
pub struct Startup;

#[async_trait]
impl NoopStartupHandler for Startup {
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let db = client.metadata().get(METADATA_DATABASE).cloned();
        if let Some(db) = db {
            if db != DATABASE {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "3D000".into(),
                    format!("database \"{db}\" does not exist (Freshet serves the database \"{DATABASE}\")"),
                ))));
            }
        }
        // Report ourselves as Postgres 15 so tools pick matching catalog queries.
        for (k, v) in [
            ("server_version", "15.0"),
            ("TimeZone", "UTC"),
            ("DateStyle", "ISO, MDY"),
            ("search_path", "\"$user\", public"),
        ] {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    k.into(),
                    v.into(),
                )))
                .await?;
        }
        Ok(())
    }
}

pub struct Handler {
    engine: Arc<Engine>,
    /// Every statement runs inside the gate (see [`Gate`]).
    gate: Arc<Gate>,
    parser: Arc<Parser>,
}

/// `stream`, keeping its statement's gate permit until its last batch is
/// out (or it is dropped): shutdown waits for the rows of a running query
/// too, but not for a finished one that something still holds on to.
fn holding(
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    running: OwnedSemaphorePermit,
) -> SendableRecordBatchStream {
    let mut running = Some(running);
    let end = futures::stream::poll_fn(move |_| {
        running.take();
        std::task::Poll::<Option<datafusion::error::Result<RecordBatch>>>::Ready(None)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream.chain(end)))
}

/// What a statement arriving during shutdown gets (PostgreSQL's
/// `admin_shutdown`).
fn shutting_down() -> PgWireError {
    simple(
        "57P01",
        "terminating connection due to administrator command",
    )
}

/// Sends a WARNING notice.
async fn warn<C>(client: &mut C, message: String) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let info = ErrorInfo::new("WARNING".into(), "01000".into(), message);
    client
        .feed(PgWireBackendMessage::NoticeResponse(info.into()))
        .await?;
    Ok(())
}

fn format_options<C: ClientInfo>(client: &C) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

fn tag(t: &CommandTag) -> Tag {
    let mut tag = Tag::new(&t.command);
    if t.oid {
        tag = tag.with_oid(0);
    }
    if let Some(r) = t.rows {
        tag = tag.with_rows(r);
    }
    tag
}

impl Handler {
    /// Executes a plan and starts its response, cancelling it after the
    /// session's `statement_timeout` (57014) when one is set.
    async fn run<C>(
        &self,
        client: &mut C,
        conn: &mut Conn,
        plan: &Plan,
        params: &ParamValues,
        format: &Format,
        opts: Arc<FormatOptions>,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(running) = self.gate.enter().await else {
            return Err(shutting_down());
        };
        let timeout = conn
            .session
            .get("statement_timeout")
            .ok()
            .and_then(|v| freshet_planner::session::parse_duration_ms(&v))
            .filter(|ms| *ms > 0);
        let work = async {
            let output = self
                .engine
                .execute(&mut conn.session, plan, params)
                .await
                .map_err(|e| pg_error(&e))?;
            self.respond(client, conn, output, format, opts, running)
                .await
        };
        match timeout {
            Some(ms) => {
                match tokio::time::timeout(std::time::Duration::from_millis(ms), work).await {
                    Ok(r) => r,
                    Err(_) => Err(simple(
                        "57014",
                        "canceling statement due to statement timeout",
                    )),
                }
            }
            None => work.await,
        }
    }

    /// Turns an engine output into a pgwire response.
    async fn respond<C>(
        &self,
        client: &mut C,
        conn: &mut Conn,
        output: Output,
        format: &Format,
        opts: Arc<FormatOptions>,
        running: OwnedSemaphorePermit,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(match output {
            Output::Rows { schema, stream } => {
                let mut stream = holding(schema.clone(), stream, running);
                let fields = Arc::new(wire::fields(&schema, format, opts)?);
                // Pull the first batch now so that errors raised at execution
                // start (division by zero, bad casts) come back as errors
                // before any row is sent.
                let first = match stream.next().await {
                    Some(Ok(b)) => Some(b),
                    Some(Err(e)) => return Err(pg_error(&PlannerError::DataFusion(e))),
                    None => None,
                };
                Response::Query(QueryResponse::new(
                    fields.clone(),
                    wire::rows_of_stream(first, stream, fields),
                ))
            }
            Output::Returning {
                tag: t,
                schema,
                batches,
            } => {
                let fields = Arc::new(wire::fields(&schema, format, opts)?);
                let mut resp = QueryResponse::new(fields.clone(), wire::rows_of(batches, fields));
                let command = if t.oid {
                    format!("{} 0", t.command)
                } else {
                    t.command.clone()
                };
                resp.set_command_tag(&command);
                Response::Query(resp)
            }
            Output::Command(t) => Response::Execution(tag(&t)),
            Output::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Output::Commit(t, notice) => {
                if let Some(n) = notice {
                    warn(client, n).await?;
                }
                Response::TransactionEnd(tag(&t))
            }
            Output::Notice(t, n) => {
                warn(client, n).await?;
                Response::Execution(tag(&t))
            }
            Output::CopyIn(copy) => {
                let columns = copy.columns.len();
                conn.copy = Some(copy);
                conn.copy_error = None;
                Response::CopyIn(CopyResponse::new(0, columns, futures::stream::empty()))
            }
            Output::CopyOut {
                schema,
                stream,
                options,
            } => {
                let columns = schema.fields().len();
                let stream = holding(schema.clone(), stream, running);
                let data = wire::copy_out(schema, stream, options)?;
                Response::CopyOut(CopyResponse::new(0, columns, data))
            }
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match self.engine.parse(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let state = conn(client);
        let opts = format_options(client);
        let mut responses = Vec::with_capacity(statements.len());
        for stmt in statements {
            let mut conn = state.lock().await;
            let result = async {
                let plan = self
                    .engine
                    .plan(&conn.session, stmt)
                    .await
                    .map_err(|e| pg_error(&e))?;
                self.run(
                    client,
                    &mut conn,
                    &plan,
                    &ParamValues::List(vec![]),
                    &Format::UnifiedText,
                    opts.clone(),
                )
                .await
            }
            .await;
            match result {
                Ok(r) => {
                    let copy = matches!(r, Response::CopyIn(_));
                    responses.push(r);
                    if copy {
                        // Nothing after COPY FROM STDIN runs before its data.
                        break;
                    }
                }
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(responses)
    }
}

/// A prepared statement.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    plan: Option<Plan>,
    /// Parameter types reported to the client and used to decode values.
    param_types: Vec<Type>,
    /// The types the plan expects for its parameters.
    inferred: Vec<Option<DataType>>,
}

pub struct Parser {
    engine: Arc<Engine>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.engine.parse(sql).map_err(|e| pg_error(&e))?;
        if statements.len() > 1 {
            return Err(simple(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(stmt) = statements.pop() else {
            return Ok(None);
        };
        let state = conn(client);
        let session = state.lock().await.session.clone();
        let plan = self
            .engine
            .plan(&session, stmt)
            .await
            .map_err(|e| pg_error(&e))?;
        let fields = plan.parameter_types().map_err(|e| pg_error(&e))?;
        let n = fields.len().max(types.len());
        let mut param_types = Vec::with_capacity(n);
        for i in 0..n {
            let declared = types
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN);
            let t = match (declared, fields.get(i).cloned().flatten()) {
                (Some(t), _) => t,
                (None, Some(f)) => wire::field_type(&f),
                (None, None) => Type::TEXT,
            };
            param_types.push(t);
        }
        let inferred = fields
            .iter()
            .map(|f| f.as_ref().map(|f| f.data_type().clone()))
            .collect();
        Ok(Some(Prepared {
            plan: Some(plan),
            param_types,
            inferred,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match stmt.plan.as_ref().and_then(|p| p.output_schema()) {
            Some(schema) => wire::fields(
                &schema,
                format.unwrap_or(&Format::UnifiedText),
                Arc::new(FormatOptions::default()),
            ),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    // `on_bind` and `on_execute` follow pgwire's defaults, except that they
    // only queue their messages (`feed`): the response to a pipelined
    // Bind/Execute/Sync then leaves in one write at Sync, as with Postgres,
    // instead of one write (and one client wake-up) per message.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(simple(
                        "08P01",
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                            message.parameters.len()
                        ),
                    ));
                }
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut transaction_status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = message.max_rows as usize;
        let portal = match client.portal_store().get_portal(portal_name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                client.set_state(PgWireConnectionState::ReadyForQuery);
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(portal_name.to_owned())),
        };
        let initial = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        let needs_fetch = if initial {
            match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), max_rows).await? {
                Response::Query(results) => {
                    portal.start(results).await;
                    true
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                    false
                }
                Response::Execution(tag) => {
                    send_execution_response(client, tag).await?;
                    false
                }
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction_status = transaction_status.to_in_transaction_state();
                    false
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction_status = transaction_status.to_idle_state();
                    client.portal_store().rm_portal(DEFAULT_NAME);
                    false
                }
                Response::Error(err) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*err).into()))
                        .await?;
                    transaction_status = transaction_status.to_error_state();
                    false
                }
                Response::CopyIn(result) => {
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    pgwire::api::copy::send_copy_in_response(client, result).await?;
                    false
                }
                Response::CopyOut(result) => {
                    pgwire::api::copy::send_copy_out_response(client, result).await?;
                    false
                }
                Response::CopyBoth(result) => {
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    pgwire::api::copy::send_copy_both_response(client, result).await?;
                    false
                }
            }
        } else {
            true
        };
        if needs_fetch {
            let fetch = portal.fetch(max_rows).await?;
            let mut response = fetch.response;
            let command_tag = response.command_tag().to_owned();
            let mut rows = 0;
            while let Some(row) = response.data_rows().next().await {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                rows += 1;
            }
            if fetch.suspended {
                client
                    .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                    .await?;
            } else {
                let tag = Tag::new(&command_tag).with_rows(rows);
                client
                    .feed(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
            }
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            client.set_transaction_status(transaction_status);
        }
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let Some(plan) = &prepared.plan else {
            return Ok(Response::EmptyQuery);
        };
        let inferred: Vec<Option<&DataType>> =
            prepared.inferred.iter().map(|t| t.as_ref()).collect();
        // jsonb parameters are decoded here (arrow-pg has no jsonb decoder):
        // arrow-pg reads them as text and the value is replaced below.
        let server_types: Vec<Option<&Type>> = prepared
            .param_types
            .iter()
            .map(|t| {
                if *t == Type::JSONB {
                    Some(&Type::TEXT)
                } else {
                    Some(t)
                }
            })
            .collect();
        // arrow-pg prefers the client's declared parameter types (Parse
        // OIDs) over `server_types`, and cannot decode a declared jsonb
        // (psycopg declares it): relabel jsonb as text for that step.
        let relabeled;
        let decode_portal = if portal
            .statement
            .parameter_types
            .iter()
            .any(|t| t.as_ref() == Some(&Type::JSONB))
        {
            let mut p: Portal<Prepared> = Portal::default();
            p.name = portal.name.clone();
            p.statement = Arc::new(pgwire::api::stmt::StoredStatement::new(
                portal.statement.id.clone(),
                portal.statement.statement.clone(),
                portal
                    .statement
                    .parameter_types
                    .iter()
                    .map(|t| match t {
                        Some(t) if *t == Type::JSONB => Some(Type::TEXT),
                        other => other.clone(),
                    })
                    .collect(),
            ));
            p.parameter_format = portal.parameter_format.clone();
            p.parameters = portal.parameters.clone();
            p.result_column_format = portal.result_column_format.clone();
            relabeled = p;
            &relabeled
        } else {
            portal
        };
        let params = arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
            decode_portal,
            &inferred,
            &server_types,
        )
        .map_err(|e| match e {
            PgWireError::UserError(i) => PgWireError::UserError(i),
            other => simple("22P02", format!("invalid parameter value: {other}")),
        })?;
        let params = jsonb_params(params, portal, &prepared.param_types)?;
        let params = coerce_params(params, &prepared.inferred)?;
        let state = conn(client);
        let opts = format_options(client);
        let mut conn = state.lock().await;
        self.run(
            client,
            &mut conn,
            plan,
            &params,
            &portal.result_column_format,
            opts,
        )
        .await
    }
}

/// Decodes `jsonb` parameters: binary format is a version byte (1) then the
/// JSON text; text format is the JSON text.
fn jsonb_params(
    params: ParamValues,
    portal: &Portal<Prepared>,
    types: &[Type],
) -> PgWireResult<ParamValues> {
    let ParamValues::List(mut values) = params else {
        return Ok(params);
    };
    for (i, t) in types.iter().enumerate() {
        if *t != Type::JSONB || i >= values.len() {
            continue;
        }
        let text = match portal.parameters.get(i).cloned().flatten() {
            None => None,
            Some(raw) => {
                let body = if portal.parameter_format.is_binary(i) {
                    match raw.split_first() {
                        Some((1, rest)) => rest.to_vec(),
                        _ => {
                            return Err(simple("22P02", "unsupported jsonb binary format version"))
                        }
                    }
                } else {
                    raw.to_vec()
                };
                Some(
                    String::from_utf8(body)
                        .map_err(|_| simple("22021", "invalid UTF-8 in jsonb parameter"))?,
                )
            }
        };
        values[i] = datafusion::common::ScalarValue::Utf8(text).into();
    }
    Ok(ParamValues::List(values))
}

/// Casts decoded parameter values to the types the plan inferred (a client
/// may declare `int4` where the plan compares with an `int8` column).
fn coerce_params(params: ParamValues, inferred: &[Option<DataType>]) -> PgWireResult<ParamValues> {
    let ParamValues::List(values) = params else {
        return Ok(params);
    };
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        match inferred.get(i).cloned().flatten() {
            Some(dt) if v.value.data_type() != dt && !v.value.is_null() => {
                let cast = v.value.cast_to(&dt).map_err(|e| {
                    simple(
                        "22P02",
                        format!("invalid value for parameter ${}: {e}", i + 1),
                    )
                })?;
                out.push(cast.into());
            }
            Some(dt) if v.value.is_null() => out.push(
                datafusion::common::ScalarValue::try_from(&dt)
                    .unwrap_or(v.value)
                    .into(),
            ),
            _ => out.push(v),
        }
    }
    Ok(ParamValues::List(out))
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = conn(client);
        let mut conn = state.lock().await;
        if conn.copy_error.is_some() {
            return Ok(());
        }
        if let Some(copy) = conn.copy.as_mut() {
            if let Err(e) = copy.feed(&data.data) {
                conn.copy_error = Some(e);
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = conn(client);
        let (copy, error) = {
            let mut conn = state.lock().await;
            (conn.copy.take(), conn.copy_error.take())
        };
        if let Some(e) = error {
            return Err(pg_error(&e));
        }
        let Some(copy) = copy else {
            return Err(simple("08P01", "CopyDone without COPY in progress"));
        };
        let Some(_running) = self.gate.enter().await else {
            return Err(shutting_down());
        };
        let t = self
            .engine
            .finish_copy(*copy)
            .await
            .map_err(|e| pg_error(&e))?;
        client
            .send(PgWireBackendMessage::CommandComplete(tag(&t).into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = conn(client);
        let mut conn = state.lock().await;
        conn.copy = None;
        conn.copy_error = None;
        simple("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}
