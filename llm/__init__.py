"""scenerec.llm."""
