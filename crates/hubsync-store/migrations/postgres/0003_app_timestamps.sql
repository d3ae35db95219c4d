-- hubsync schema, version 3 (PostgreSQL). The app-table timestamps already default to
-- hubsync_now_ms() here; this adds the same rule SQLite gets in its version 3: an app UPDATE that
-- leaves updated_at unchanged gets it bumped (to now, and always past the old value). A BEFORE
-- trigger changes NEW in place, so the capture trigger still records the write exactly once.
-- hubsync's own writes (hubsync.applying = 'on') set updated_at themselves and are left alone.

CREATE FUNCTION hubsync_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('hubsync.applying', true), '') <> 'on'
       AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := greatest(hubsync_now_ms(), OLD.updated_at + 1);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER contacts_touch_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION hubsync_touch_updated_at();
CREATE TRIGGER companies_touch_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION hubsync_touch_updated_at();
CREATE TRIGGER deals_touch_updated_at BEFORE UPDATE ON deals
    FOR EACH ROW EXECUTE FUNCTION hubsync_touch_updated_at();
