-- Leases: which worker is driving a request, until when (unix milliseconds).
ALTER TABLE requests ADD COLUMN lease_owner TEXT;
ALTER TABLE requests ADD COLUMN lease_until INTEGER;
