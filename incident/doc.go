// Package incident defines the Incident that a Block creates, in the same
// transaction that stops the run: linked to the run, its trace, the policy
// snapshot and the policy, with a severity (SeverityFor) and a lifecycle
// open → acknowledged → resolved (Incident.Transition).
package incident
