package main

import (
	"log/slog"

	"github.com/imprint-dev/imprint/agent"
)

// agentDeps wires the real implementations of the agent's collaborators.
func agentDeps(cfg agent.Config, log *slog.Logger, logs *agent.LogBuffer) (agent.Deps, error) {
	return agent.Deps{
		Logger: log,
		Logs:   logs,
	}, nil
}
