package otelgov

import "go.opentelemetry.io/otel/attribute"

// Names: of spans, events and the instrumentation scope; attribute
// prefixes and values.
const (
	runSpanName          = "stopline.run"
	stepSpanPrefix       = "stopline.step "
	eventInflection      = "stopline.inflection"
	eventIncident        = "stopline.incident"
	eventFinding         = "stopline.finding"
	scopeName            = "github.com/stopline/stopline/otelgov"
	labelPrefix          = "stopline.run.label."
	metadataPrefix       = "stopline.step.metadata."
	errorRecordFailed    = "record_failed"
	operationChat        = "chat"
	operationExecuteTool = "execute_tool"
)

// Governance attributes (the package documentation lists them all).
const (
	keyRunID             = attribute.Key("stopline.run.id")
	keyTenantID          = attribute.Key("stopline.tenant.id")
	keySnapshotID        = attribute.Key("stopline.snapshot.id")
	keySnapshotHash      = attribute.Key("stopline.snapshot.hash")
	keyPolicyVersion     = attribute.Key("stopline.policy.version")
	keyRunStatus         = attribute.Key("stopline.run.status")
	keyRunSteps          = attribute.Key("stopline.run.steps")
	keyRunTotalTokens    = attribute.Key("stopline.run.total_tokens")
	keyRunTotalCost      = attribute.Key("stopline.run.total_cost_cents")
	keyStoppedAtStep     = attribute.Key("stopline.stopped_at_step")
	keyTerminationReason = attribute.Key("stopline.termination_reason")
	keyStepIndex         = attribute.Key("stopline.step.index")
	keyStepType          = attribute.Key("stopline.step.type")
	keyStepStatus        = attribute.Key("stopline.step.status")
	keyStepTokens        = attribute.Key("stopline.step.tokens")
	keyStepCost          = attribute.Key("stopline.step.cost_cents")
	keyStepInput         = attribute.Key("stopline.step.input")
	keyStepOutput        = attribute.Key("stopline.step.output")
	keyDecision          = attribute.Key("stopline.decision")
	keyPolicyID          = attribute.Key("stopline.policy.id")
	keySource            = attribute.Key("stopline.decision.source")
	keyReason            = attribute.Key("stopline.decision.reason")
	keyMessage           = attribute.Key("stopline.decision.message")
	keyEnforcement       = attribute.Key("stopline.enforcement")
	keyThreshold         = attribute.Key("stopline.threshold")
	keyLimit             = attribute.Key("stopline.limit")
	keyObserved          = attribute.Key("stopline.observed")
	keyRecordHash        = attribute.Key("stopline.record.hash")
	keyIncidentID        = attribute.Key("stopline.incident.id")
	keyErrorType         = attribute.Key("error.type")
)

// GenAI semantic conventions (development stability), as named in
// semconv v1.41.0, since moved to the OpenTelemetry GenAI semantic
// conventions; kept here rather than imported so that the names do not
// move with the semconv package.
const (
	keyGenAIOperation    = attribute.Key("gen_ai.operation.name")
	keyGenAIRequestModel = attribute.Key("gen_ai.request.model")
	keyGenAIRespModel    = attribute.Key("gen_ai.response.model")
	keyGenAIToolName     = attribute.Key("gen_ai.tool.name")
	keyGenAIInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	keyGenAIOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
)

// The metadata keys under which package llmhttp records a model call's
// input and output tokens (llmhttp.MetaInputTokens, MetaOutputTokens):
// the only metadata read without WithContent, and only as integers.
const (
	metaInputTokens  = "stopline.input_tokens"
	metaOutputTokens = "stopline.output_tokens"
)
