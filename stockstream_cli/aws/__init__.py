"""Everything that talks to AWS beyond the S3 store: the session, and deploy as plan -> apply."""
