-- The closed loop: discovery → verification → rectification → feedback. Cases built from
-- alerts, the enterprise's responses (with hashed attachments), inspection tasks, joint
-- ("inspect once") visits, the frequency guard and its refusals, invitation-style
-- advisory check-ups, notifications and a webhook outbox.

-- An inspector's department: a joint visit brings several departments to one site.
ALTER TABLE users ADD COLUMN department text NOT NULL DEFAULT '';

CREATE TABLE cases (
    id               bigserial PRIMARY KEY,
    enterprise_id    text NOT NULL REFERENCES enterprises (id),
    title            text NOT NULL,
    state            text NOT NULL DEFAULT 'discovered'
                     CHECK (state IN ('discovered', 'verifying', 'rectifying', 'feedback',
                                      'closed')),
    opened_by        text NOT NULL,               -- a user id, or 'engine'
    opened_at        timestamptz NOT NULL DEFAULT now(),
    response_due_at  timestamptz,                 -- the enterprise's deadline; NULL: none due
    escalated_at     timestamptz,                 -- the deadline passed without a response
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX cases_enterprise ON cases (enterprise_id, opened_at DESC);
CREATE INDEX cases_due ON cases (response_due_at)
    WHERE response_due_at IS NOT NULL AND escalated_at IS NULL AND state <> 'closed';

-- An alert is evidence in at most one case.
CREATE TABLE case_alerts (
    case_id   bigint NOT NULL REFERENCES cases (id),
    alert_id  bigint NOT NULL UNIQUE REFERENCES alerts (id),
    PRIMARY KEY (case_id, alert_id)
);

-- Every step of a case, in order: who, when, why.
CREATE TABLE case_steps (
    id          bigserial PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES cases (id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('opened', 'moved', 'response', 'accepted',
                                              'rejected', 'escalated', 'task', 'task_done')),
    from_state  text,
    to_state    text,
    note        text
);
CREATE INDEX case_steps_case ON case_steps (case_id, id);

CREATE TABLE case_responses (
    id            bigserial PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES cases (id),
    responder     text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    explanation   text NOT NULL,
    verdict       text CHECK (verdict IN ('accepted', 'rejected')),
    verdict_by    text,
    verdict_at    timestamptz,
    verdict_note  text
);
CREATE INDEX case_responses_case ON case_responses (case_id, id);

-- Attachments are kept whole with their SHA-256: what was sent is what is shown.
CREATE TABLE case_attachments (
    id            bigserial PRIMARY KEY,
    response_id   bigint NOT NULL REFERENCES case_responses (id),
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          integer NOT NULL CHECK (size >= 0),
    sha256        bytea NOT NULL CHECK (length(sha256) = 32),
    content       bytea NOT NULL
);
CREATE INDEX case_attachments_response ON case_attachments (response_id);

-- Invitation-style check-ups: the enterprise asks; what follows is advisory.
CREATE TABLE invitations (
    id             bigserial PRIMARY KEY,
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    invited_by     text NOT NULL,
    scope          text NOT NULL,
    preferred_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    state          text NOT NULL DEFAULT 'requested'
                   CHECK (state IN ('requested', 'scheduled', 'done', 'declined'))
);
CREATE INDEX invitations_enterprise ON invitations (enterprise_id, created_at DESC);

-- A visit to be made: from a case remote verification could not settle, or from an
-- invitation (advisory). Closed by the findings of the visit that checked in for it.
CREATE TABLE inspection_tasks (
    id             bigserial PRIMARY KEY,
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    case_id        bigint REFERENCES cases (id),
    invitation_id  bigint REFERENCES invitations (id),
    advisory       boolean NOT NULL DEFAULT false,
    reason         text NOT NULL,
    assignee       text NOT NULL REFERENCES users (id),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    due_at         timestamptz,
    state          text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done')),
    visit_id       bigint REFERENCES visits (id),
    findings       text,
    done_at        timestamptz,
    CHECK (advisory = (invitation_id IS NOT NULL)),
    CHECK (NOT (advisory AND case_id IS NOT NULL))   -- advisory work is no enforcement
);
CREATE INDEX inspection_tasks_assignee ON inspection_tasks (assignee, state);
CREATE INDEX inspection_tasks_case ON inspection_tasks (case_id);

-- Visits: their type, what justified them, and (for a joint visit) every inspector.
ALTER TABLE visits ADD COLUMN kind text NOT NULL DEFAULT 'unscheduled'
    CHECK (kind IN ('unscheduled', 'task', 'advisory'));
ALTER TABLE visits ADD COLUMN task_id bigint REFERENCES inspection_tasks (id);
ALTER TABLE visits ADD COLUMN case_id bigint REFERENCES cases (id);
ALTER TABLE visits ADD COLUMN justification text;
ALTER TABLE visits ADD CONSTRAINT visits_advisory_no_case
    CHECK (NOT (kind = 'advisory' AND case_id IS NOT NULL));

CREATE TABLE visit_inspectors (
    visit_id        bigint NOT NULL REFERENCES visits (id),
    inspector_id    text NOT NULL,
    department      text NOT NULL DEFAULT '',
    checked_in_at   timestamptz NOT NULL DEFAULT now(),
    checked_out_at  timestamptz,
    findings        text,
    token_sha256    bytea,
    PRIMARY KEY (visit_id, inspector_id)
);
CREATE INDEX visit_inspectors_inspector ON visit_inspectors (inspector_id, checked_in_at DESC);

-- Enterprises not to be disturbed without a recorded reason.
CREATE TABLE no_disturbance (
    enterprise_id  text PRIMARY KEY REFERENCES enterprises (id),
    reason         text NOT NULL,
    added_by       text NOT NULL,
    added_at       timestamptz NOT NULL DEFAULT now(),
    until          timestamptz
);

-- Check-ins the frequency guard refused: the refusal is on record too.
CREATE TABLE visit_refusals (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    inspector_id   text NOT NULL,
    reason         text NOT NULL,
    recent_visits  integer NOT NULL,
    no_disturbance boolean NOT NULL
);
CREATE INDEX visit_refusals_enterprise ON visit_refusals (enterprise_id, at DESC);

-- What an enterprise (or the regulators) is told; the console polls these.
CREATE TABLE notifications (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    audience       text NOT NULL CHECK (audience IN ('enterprise', 'regulator')),
    case_id        bigint REFERENCES cases (id),
    kind           text NOT NULL,
    message        text NOT NULL
);
CREATE INDEX notifications_enterprise ON notifications (enterprise_id, id DESC);

-- Outbox for outside systems: written in the notification's transaction, sent after.
CREATE TABLE webhook_outbox (
    id               bigserial PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    event            text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_status      integer,
    last_error       text
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE status = 'pending';
