"""The schema. Changes go through an Alembic migration in store/migrations/versions."""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table,
                        Text, UniqueConstraint)

metadata = MetaData()

resources = Table(
    "resources", metadata,
    Column("key", String(1024), primary_key=True),  # lower-cased ARM id
    Column("id", String(1024), nullable=False),
    Column("type", String(128), nullable=False),
    Column("subscription_id", String(64), nullable=False),
    Column("resource_group", String(128)),  # lower-cased
    Column("parent_key", String(1024), nullable=False),
    Column("name", String(256), nullable=False),
    Column("sort_key", String(256), nullable=False),
    Column("location", String(64)),
    Column("properties", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("sku", Text),
    Column("provisioning_state", String(32), nullable=False),
    Column("identity_key", String(512)),
    Column("version_major", BigInteger),
    Column("version_minor", BigInteger),
    Column("version_patch", BigInteger),
    Column("exclude_from_latest", Boolean, nullable=False, default=False),
    Column("end_of_life", String(40)),
    Column("source_key", String(1024)),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    UniqueConstraint("parent_key", "identity_key", name="uq_resources_identity"),
    Index("ix_resources_parent_sort", "parent_key", "sort_key"),
    Index("ix_resources_group_type_sort", "subscription_id", "resource_group", "type", "sort_key"),
    Index("ix_resources_sub_type_sort", "subscription_id", "type", "sort_key"),
    Index("ix_resources_sub_type_location", "subscription_id", "type", "location"),
    Index("ix_resources_latest", "parent_key", "version_major", "version_minor", "version_patch"),
    Index("ix_resources_type_state", "type", "provisioning_state"),
)

target_regions = Table(
    "target_regions", metadata,
    Column("version_key", String(1024), primary_key=True),
    Column("region", String(64), primary_key=True),
    Column("replica_count", Integer, nullable=False),
    Column("storage_account_type", String(32), nullable=False),
    Column("exclude_from_latest", Boolean, nullable=False, default=False),
    Column("state", String(32), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("details", Text, nullable=False, default=""),
    Index("ix_target_regions_region_state", "region", "state"),
)

operations = Table(
    "operations", metadata,
    Column("id", String(64), primary_key=True),
    Column("resource_key", String(1024), nullable=False),
    Column("resource_id", String(1024), nullable=False),
    Column("resource_type", String(128), nullable=False),
    Column("subscription_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("region", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("start_time", String(40), nullable=False),
    Column("end_time", String(40)),
    Column("lease_owner", String(64)),
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("payload", Text),  # what the request asked, for actions that need more than the resource
    Column("result", Text),   # what the action produced (a run-command's output)
    Index("ix_operations_status_lease", "status", "lease_until"),
    Index("ix_operations_resource", "resource_key"),
)

# ---- content (data plane) ----------------------------------------------------------------------

contents = Table(
    "contents", metadata,
    Column("id", String(36), primary_key=True),
    Column("virtual_size", BigInteger, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # writing | ready
    Column("data_bytes", BigInteger, nullable=False, default=0),  # occupied: non-zero chunks
    Column("created_at", Float, nullable=False),
)

content_chunks = Table(
    "content_chunks", metadata,
    Column("content_id", String(36), primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("length", Integer, nullable=False),
    Index("ix_content_chunks_digest", "digest"),
)

disk_contents = Table(
    "disk_contents", metadata,
    Column("resource_key", String(1024), primary_key=True),
    Column("lun", Integer, primary_key=True),  # -1 is the OS disk
    Column("content_id", String(36), nullable=False),
    Index("ix_disk_contents_content", "content_id"),
)

content_placements = Table(
    "content_placements", metadata,
    Column("content_id", String(36), primary_key=True),
    Column("store", String(256), primary_key=True),
    Index("ix_content_placements_store", "store"),
)

store_chunks = Table(
    "store_chunks", metadata,
    Column("store", String(256), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("stored_bytes", Integer, nullable=False),
    Column("raw_bytes", Integer, nullable=False),
    Column("last_seen", Float, nullable=False),
)

replicas = Table(
    "replicas", metadata,
    Column("version_key", String(1024), primary_key=True),
    Column("region", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("store", String(256), nullable=False),
    Column("state", String(16), nullable=False),  # Replicating | Completed | Failed
    Column("bytes_done", BigInteger, nullable=False, default=0),
    Column("bytes_total", BigInteger, nullable=False, default=0),
    Column("details", Text, nullable=False, default=""),
)

transfers = Table(
    "transfers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("resource_key", String(1024), nullable=False),
    Column("from_region", String(64), nullable=False),
    Column("to_region", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
)

upload_leases = Table(
    "upload_leases", metadata,
    Column("resource_key", String(1024), primary_key=True),
    Column("owner", String(256), nullable=False),  # host:pid of the process receiving the upload
    Column("until", Float, nullable=False),
    Column("state_before", String(32)),  # the disk's diskState before the upload began
)

# What each distribute target of an image template produced in its last run (runOutputName).
run_outputs = Table(
    "run_outputs", metadata,
    Column("template_key", String(1024), primary_key=True),
    Column("name_key", String(64), primary_key=True),  # lower-cased runOutputName
    Column("name", String(64), nullable=False),
    Column("artifact_id", Text),
    Column("artifact_uri", Text),
    Column("provisioning_state", String(32), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

# The platform image catalog (publisher:offer:sku:version); content under "platform/..." keys.
platform_images = Table(
    "platform_images", metadata,
    Column("key", String(300), primary_key=True),  # lower-cased publisher/offer/sku/version
    Column("publisher", String(64), nullable=False),
    Column("offer", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("version", String(40), nullable=False),
    Column("os_type", String(16), nullable=False),
    Column("hyper_v_generation", String(8), nullable=False),
    Column("architecture", String(16), nullable=False),
    Column("virtual_size", BigInteger, nullable=False),
    Column("created_at", String(40), nullable=False),
)

# ---- identity: the authority's tenants, subscriptions, principals and signing keys --------------

tenants = Table(
    "tenants", metadata,
    Column("id", String(64), primary_key=True),  # lower-case GUID (or an external issuer's tid)
    Column("display_name", String(256), nullable=False),
    Column("issuer", String(1024)),  # None: Galley's own authority signs its tokens
    Column("is_home", Boolean, nullable=False, default=False),  # the installation's administrators
    Column("created_at", String(40), nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", String(64), primary_key=True),  # lower-case GUID
    Column("tenant_id", String(64), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Index("ix_subscriptions_tenant", "tenant_id"),
)

principals = Table(
    "principals", metadata,
    Column("id", String(64), primary_key=True),  # object id (the token's oid)
    Column("app_id", String(64), nullable=False, unique=True),  # client id
    Column("tenant_id", String(64), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("kind", String(32), nullable=False),  # ServicePrincipal
    Column("failed_sign_ins", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=False, default=0.0),
    Column("created_at", String(40), nullable=False),
    Index("ix_principals_tenant", "tenant_id"),
)

# Secrets are kept only as slow salted hashes (identity/secrets.py); `hint` is their first characters.
principal_secrets = Table(
    "principal_secrets", metadata,
    Column("id", String(64), primary_key=True),
    Column("principal_id", String(64), nullable=False),
    Column("secret_hash", String(512), nullable=False),
    Column("hint", String(8), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", Float),  # None: never
    Index("ix_principal_secrets_principal", "principal_id"),
)

# Token signing keys, shared by every node on the database. A retired key still verifies the
# tokens it signed until `valid_until`; after that it is gone from the JWKS and refused.
signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),
    Column("valid_until", Float),
)

# ---- access: custom roles, role assignments, groups of principals -------------------------------

role_definitions = Table(
    "role_definitions", metadata,  # custom roles only: the built-in ones live in domain/access.py
    Column("id", String(64), primary_key=True),
    Column("role_name", String(512), nullable=False),
    Column("description", Text, nullable=False),
    Column("actions", Text, nullable=False),  # JSON lists
    Column("not_actions", Text, nullable=False),
    Column("assignable_scopes", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

role_assignments = Table(
    "role_assignments", metadata,
    Column("id", String(64), primary_key=True),
    Column("scope", String(1024), nullable=False),
    Column("scope_key", String(1024), nullable=False),
    Column("role_definition_id", String(64), nullable=False),
    Column("principal_id", String(64), nullable=False),
    Column("principal_type", String(32), nullable=False),
    Column("description", Text),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(64)),
    Index("ix_role_assignments_principal", "principal_id"),
    Index("ix_role_assignments_scope", "scope_key"),
)

groups = Table(
    "groups", metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("created_at", String(40), nullable=False),
)

group_members = Table(
    "group_members", metadata,
    Column("group_id", String(64), primary_key=True),
    Column("member_id", String(64), primary_key=True),
    Index("ix_group_members_member", "member_id"),
)

# ---- the activity log: every write and every refused request (galley/activity) ------------------

activity_log = Table(
    "activity_log", metadata,
    Column("id", String(36), primary_key=True),  # eventDataId
    Column("subscription_id", String(64)),  # lower-case; None: not under a known subscription
    Column("event_timestamp", String(40), nullable=False),  # iso(): sorts as the moments do
    Column("submission_timestamp", String(40), nullable=False),
    Column("tenant_id", String(64)),  # the caller's
    Column("caller", String(256), nullable=False),  # appid, else object id, else "anonymous"
    Column("caller_object_id", String(64)),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),  # without the query string (it may carry secrets)
    Column("action", String(512)),  # the ARM action the route maps to; None when no rule covers it
    Column("scope", Text, nullable=False),  # what the action was authorized over
    Column("resource_id", Text, nullable=False),
    Column("resource_group", String(128)),
    Column("status_code", Integer, nullable=False),
    Column("correlation_id", String(128), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("client_request_id", String(128)),
    Column("client_ip", String(64)),
    Index("ix_activity_log_subscription_time", "subscription_id", "event_timestamp"),
    Index("ix_activity_log_time", "event_timestamp"),
)

# ---- storage account keys (Shared Key and SAS signing; kept as given: HMAC keys cannot be hashed) -

storage_account_keys = Table(
    "storage_account_keys", metadata,
    Column("account_key", String(1024), primary_key=True),  # the account's lower-cased ARM id
    Column("key_name", String(16), primary_key=True),  # key1, key2
    # The account's creationTime: keys of a deleted account never serve a new one of the same id.
    Column("account_created", String(40), nullable=False),
    Column("value", String(128), nullable=False),  # base64 of 64 random bytes
    Column("created_at", String(40), nullable=False),
)

# ---- users and sign-in (identity/users.py, identity/sign_in.py) ----------------------------------
# A user is also a row of `principals` (kind "User"), so role assignments, groups and token checks
# treat it as any principal; here are what only users have. Secrets are kept as hashes only.

users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),  # the principal's object id
    Column("tenant_id", String(64), nullable=False),
    Column("user_principal_name", String(320), nullable=False, unique=True),  # lower-case
    Column("password_hash", String(512), nullable=False),  # identity/secrets.py's scrypt
    Column("created_at", String(40), nullable=False),
    Index("ix_users_tenant", "tenant_id"),
)

# Wrong passwords in a row per sign-in name, whether or not a user has that name (so a lock-out
# tells no one which names exist); forgotten once they are old.
sign_in_failures = Table(
    "sign_in_failures", metadata,
    Column("user_name", String(400), primary_key=True),  # lower-case user principal name
    Column("failed", Integer, nullable=False),
    Column("locked_until", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_sign_in_failures_updated", "updated_at"),
)

# A signed-in browser (the authority's cookie) or a password grant: the tokens issued in it carry
# its id as `sid` and stop working when it ends (sign-out).
sign_in_sessions = Table(
    "sign_in_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("cookie_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie's value
    Column("user_id", String(64), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ended_at", Float),
    Index("ix_sign_in_sessions_user", "user_id"),
)

authorization_codes = Table(
    "authorization_codes", metadata,
    Column("code_hash", String(64), primary_key=True),  # sha256 of the code
    Column("session_id", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("code_challenge", String(128), nullable=False),  # PKCE S256
    Column("scope", String(1024), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("redeemed_at", Float),  # kept until expiry so a second redemption is told apart
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the token
    Column("session_id", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("scope", String(1024), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_refresh_tokens_session", "session_id"),
)


# ---- the processes sharing this database (galley status) -----------------------------------------

nodes = Table(
    "nodes", metadata,
    Column("id", String(32), primary_key=True),  # per process; prefixes its workers' lease owners
    Column("name", String(256), nullable=False),  # GALLEY_NODE_NAME, the host's name by default
    Column("roles", String(64), nullable=False),  # comma list: api, worker, builder
    Column("url", String(1024)),
    Column("version", String(32), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float),
    Column("process", String(256)),  # host:pid, the owner of the upload leases it takes
)

# Which node holds each disk access session (beginGetAccess): its pages are in that node's home,
# so the other nodes forward the session's requests there.
disk_access_sessions = Table(
    "disk_access_sessions", metadata,
    Column("id", String(32), primary_key=True),  # the session id, as in its account md-{id}
    Column("resource_key", String(1024), nullable=False, unique=True),
    Column("node_id", String(32), nullable=False),
    Column("expires_at", Float),  # when the session runs out; null for sessions granted before 0018
)
