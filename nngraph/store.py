"""The store: the only module that talks to the database driver.

Every query goes through Store.read or Store.write with its parameters passed as
parameters, never formatted into the text. Connection problems become one NNGraphError
that says what to check, raised at open time (the driver would otherwise retry for a minute).

Reads are read-only on both sides: the text passes nngraph.readonly's check, and it runs in
a READ-mode transaction (Neo4j refuses any write in it; one that slips through elsewhere is
rolled back). Every transaction carries the query timeout (nngraph.limits), which the
server enforces; Ctrl-C closes the connection, so the server abandons the transaction.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager

from nngraph.config import Connection
from nngraph.errors import NNGraphError, Unreachable
from nngraph.limits import query_timeout
from nngraph.readonly import check_read_only

CONNECT_TIMEOUT = 10.0
BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
LOW_DISK = 64 * 1024 * 1024  # bytes free under which a refused write is put down to a full disk
CONNECTIVITY_CHECK = "RETURN 1 AS ok"
CYPHER = [CONNECTIVITY_CHECK]  # every Cypher text this module sends (checked by tests/test_cypher_lint.py)


class QueryRefused(NNGraphError):
    """The server ran the query and refused it (a constraint, a conflict, a semantic error)."""


class TransientRefusal(QueryRefused):
    """Refused for now (a deadlock between concurrent writers, a lock timeout): worth running again."""


TRANSIENT_RETRIES = 5


class Store:
    def __init__(self, driver, database: str | None, where: str, home=None, timeout: float | None = None):
        self._driver = driver
        self.database = database
        self.where = where
        self.home = home  # the local server's directory (None for a remote server)
        self.timeout = timeout or query_timeout()
        self.facts = {}  # answers about the server that hold while it runs (has it GDS?): asked once
        self.agent = ""  # the server's name and version, as it announces itself
        self._schema_ready = False

    @classmethod
    def open(cls, connection: Connection, announce=None, server=None) -> "Store":
        """Connect (starting the managed server, `server` or the configured one, when no URI is
        given) and check the connection."""
        import neo4j

        if connection.local:
            from nngraph.servers import managed_server

            server = server or managed_server()
            info = server.start(announce)
            uri, auth, database = info.uri, (server.user, server.password()), server.database
            where, home = f"{server.label} ({server.directory})", server.directory
        else:
            uri, database = connection.uri, connection.database
            if uri.split("://")[0].lower() not in BOLT_SCHEMES:
                raise NNGraphError(f"{uri!r} is not a Bolt URI: nngraph talks Bolt, as bolt://host:7687 or "
                                   "neo4j://host:7687 (+s or +ssc for TLS); HTTP is not supported")
            auth = (connection.user or "neo4j", connection.password or "")
            where, home = uri, None
        try:
            driver = neo4j.GraphDatabase.driver(uri, auth=auth, connection_timeout=CONNECT_TIMEOUT,
                                                max_transaction_retry_time=0, notifications_min_severity="OFF")
        except (ValueError, neo4j.exceptions.ConfigurationError) as exc:
            raise NNGraphError(f"{uri!r} is not a usable database URI ({exc}); "
                               "expected bolt://host:7687 or neo4j://host:7687") from None
        store = cls(driver, database, where, home)
        try:
            store.read(CONNECTIVITY_CHECK)
            with store._errors():
                store.agent = driver.get_server_info().agent or ""
        except NNGraphError:
            driver.close()
            raise
        return store

    @property
    def concurrent_writes(self) -> int:
        """How many write transactions to run at once for bulk links: Neo4j commits two batches at
        once 1.4-1.5x faster than one (2 cores, bench/README.md); ArcadeDB slows down instead."""
        return 1 if "ArcadeDB" in self.agent else 2

    def close(self) -> None:
        self._driver.close()

    def ensure_schema(self) -> None:
        """Create the constraints and indexes of queries/schema.cypher (idempotent), once per store."""
        if not self._schema_ready:
            from nngraph.queries import statements

            for statement in statements("schema"):
                try:
                    self.write(statement, retries=3)  # two first ingests at once race to create an index
                except QueryRefused as refused:
                    # an ingest killed while Neo4j built a constraint's index can leave that index
                    # behind without its constraint (Neo4j drops such orphans only at its next
                    # start): drop it, and create the constraint again
                    orphan = re.search(r"CONSTRAINT (\w+) IF NOT EXISTS", statement)
                    if orphan is None or f"already exists an index called '{orphan[1]}'" not in str(refused):
                        raise
                    self.write(f"DROP INDEX {orphan[1]} IF EXISTS")
                    self.write(statement, retries=3)
            self._schema_ready = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, query: str, parameters: dict | None = None) -> list[dict]:
        """Run a query that must not write (checked before it is sent, and by the server in READ mode);
        its transaction is rolled back, so a write that slips past both is undone."""
        check_read_only(query)
        with self._transaction("READ") as transaction:
            result = transaction.run(query, parameters or {})
            records = [record.data() for record in result]
            if result.consume().counters.contains_updates:
                raise NNGraphError("this query writes to the database; nothing was changed. "
                                   "Pass --write if that is what you want")
        return records

    def write(self, query: str, parameters: dict | None = None, retries: int = 0) -> list[dict]:
        """Run one query in its own committed transaction. `retries`: how often to run it again when
        the server refuses it for a conflict with a concurrent writer (a key another transaction just
        took, a concurrent modification); a refused transaction was rolled back, so that is safe."""
        for attempt in range(max(retries, TRANSIENT_RETRIES) + 1):
            try:
                with self._transaction() as transaction:
                    records = [r.data() for r in transaction.run(query, parameters or {})]
                    transaction.commit()
                    return records
            except QueryRefused as refused:
                limit = max(retries, TRANSIENT_RETRIES) if isinstance(refused, TransientRefusal) else retries
                if attempt >= limit:
                    raise
                time.sleep(0.05 * 2 ** attempt)

    @contextmanager
    def transaction(self):
        """Several writes that commit together or not at all: yields a run(query, params) function."""
        with self._transaction() as transaction:
            yield lambda query, parameters=None: [r.data() for r in transaction.run(query, parameters or {})]
            transaction.commit()

    @contextmanager
    def _transaction(self, mode: str = "WRITE"):
        """A transaction under the query timeout, rolled back unless committed. Ctrl-C leaves at once:
        the driver is closed rather than wait for a rollback the server answers only when the query
        ends; the server sees the connection go and abandons the transaction."""
        with self._errors():
            options = {"default_access_mode": mode, **({"database": self.database} if self.database else {})}
            with self._driver.session(**options) as session:
                transaction = session.begin_transaction(timeout=self.timeout)
                try:
                    yield transaction
                except KeyboardInterrupt:
                    self._driver.close()
                    raise
                finally:
                    if not transaction.closed() and not self._driver_closed():
                        transaction.rollback()

    def _driver_closed(self) -> bool:
        return getattr(self._driver, "_closed", False)

    @contextmanager
    def _errors(self):
        import neo4j.exceptions as errors

        try:
            yield
        except errors.AuthError:
            raise NNGraphError(f"{self.where} refused the user name or password: check --user/--password "
                               "or NEO4J_USERNAME/NEO4J_PASSWORD") from None
        except errors.ServiceUnavailable as exc:
            raise Unreachable(f"cannot reach {self.where} ({_one_line(exc)}): is the server running, and are "
                               "--uri or NEO4J_URI right?") from None
        except errors.CypherSyntaxError as exc:
            raise NNGraphError(f"Cypher syntax error: {_one_line(exc.message)}") from None
        except errors.Neo4jError as exc:
            code, message = exc.code or "", _one_line(exc.message or exc)
            if "DatabaseNotFound" in code:
                raise NNGraphError(f"database {self.database!r} does not exist on {self.where}: "
                                   "check --database or NEO4J_DATABASE") from None
            if "AccessMode" in code:
                raise NNGraphError("this query writes to the database and runs read-only: nothing was changed. "
                                   "Pass --write if that is what you want") from None
            if "TimedOut" in code or "Terminated" in code or "timeout" in message.lower():
                raise NNGraphError(f"the query ran past its time limit and was stopped; nothing it did was kept. "
                                   f"The limit is NNGRAPH_QUERY_TIMEOUT (now {self.timeout:g} s; a managed server "
                                   "keeps the value it started with until `nngraph db stop`): raise it, or ask for "
                                   "less") from None
            refusal = TransientRefusal if isinstance(exc, errors.TransientError) else QueryRefused
            raise refusal(f"the database refused the query: {_one_line(exc.message or exc)}"
                          f"{self._disk_hint()}") from None
        except errors.DriverError as exc:
            raise NNGraphError(f"database driver error talking to {self.where}: {_one_line(exc)}") from None


    def _disk_hint(self) -> str:
        """A local server that fails to commit on a full disk says only that the commit failed."""
        if self.home is None:
            return ""
        free = shutil.disk_usage(self.home).free
        if free >= LOW_DISK:
            return ""
        return (f" (the disk holding {self.home} has {free / 1e6:.0f} MB free: free some space, then run the "
                "command again; what was stored before is intact and nothing half-written is shown)")


def _one_line(text) -> str:
    """Driver messages span lines; an error here is one line."""
    return " ".join(str(text).split())[:300]
