"""localaws: moto server extended with AWS centralized root access.

moto 5.2.1 serves SQS, S3, Organizations, IAM and STS but knows nothing of
`sts:AssumeRoot`, task-scoped root sessions, root user credentials or the IAM
organization features. This package adds them in-process, as a WSGI middleware
in front of moto's own application plus a few targeted patches of moto's
backends, so rootwarden can be tested end to end on one machine.

Modules (one concern each):
    clock        the shiftable clock that root-session expiry is judged by
    state        every piece of extension state, and its reset
    rootuser     the root user's credentials of one account
    awsrequest   what an incoming AWS request is (service, operation, key)
    responses    success and error bodies in each service's wire format
    organization organization lookups, account states, and the patches of moto's Organizations
    features     IAM's organization features API (ListOrganizationsFeatures...)
    assume_root  STS AssumeRoot and the root sessions it issues
    scope        what a root session's task policy allows
    root_iam     IAM calls a root session makes on the root user
    identity     principal ids (GetCallerIdentity, SQS SenderId)
    faults       injected errors and latency
    batch_faults entry-level faults of SQS batch calls (some entries fail)
    concurrency  root-session requests in flight per member account, and their maximum
    speed        moto's hot paths made cheap, with the same answers
    sqs_limits   SQS message sizes in bytes, attributes included, as AWS counts them
    sqs_fifo     FIFO deduplication ids remembered for 5 minutes after the send
    s3_regions   ListBuckets' regions and pages, and the redirect to a bucket's region
    resources    buckets and queues made in bulk in moto's backends (control API)
    control      the /_localaws JSON control endpoints
    middleware   the WSGI glue in front of moto
    server       the foreground server (serve)
    daemon       background start/stop
    seed         a realistic organization for demos and load tests
"""
