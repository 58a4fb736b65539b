"""The planner's domain: specs, routing statistics, flow models, the problem, the objective and plans."""
