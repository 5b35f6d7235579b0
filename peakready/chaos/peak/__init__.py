"""Peak rehearsals: timed to the load profile, a flash sale, the busiest AZ at the top."""
