"""scenerec.transfer."""
