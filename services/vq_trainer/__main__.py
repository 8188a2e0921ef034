from services.vq_trainer.cli import main
from services.logs import configure_job_logs

if __name__ == "__main__":
    configure_job_logs(with_ray=False)  # Ray's known noise off; no colour codes in files
    raise SystemExit(main())
