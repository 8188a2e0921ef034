"""One APIRouter per resource; handlers validate, call one function, and return a schema."""
