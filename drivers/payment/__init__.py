"""Payment devices: one interface (base), the ECR framing (ecr), the serial pad driver and its simulator, and
payment codes through the pad's acquirer (code_pay)."""
