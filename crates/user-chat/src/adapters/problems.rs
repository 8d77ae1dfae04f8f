//! user-chat's errors as problem documents, and back: a core service's problem becomes a
//! [`ServiceError`] (refused below 500, failed from 500), and goes back to the client as the
//! service worded it; the caller of a request becomes the [`Requester`] the ports take.

use axum::http::StatusCode;
use msa_http::auth::Caller;
use msa_http::Problem;

use crate::application::ports::{Answer, Requester, ServiceError};
use crate::application::UserChatError;

impl From<&Caller> for Requester {
    fn from(caller: &Caller) -> Self {
        Requester {
            user_id: caller.user_id,
            token: caller.token.clone(),
        }
    }
}

impl From<Problem> for ServiceError {
    fn from(problem: Problem) -> Self {
        let answer = Answer {
            code: problem.status,
            retry_after: problem.retry_after(),
            kind: problem.kind,
            title: problem.title,
            detail: problem.detail,
            errors: problem.errors,
        };
        if answer.code < 500 {
            ServiceError::Refused(answer)
        } else {
            ServiceError::Failed(answer)
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Self {
        let (ServiceError::Refused(answer) | ServiceError::Failed(answer)) = error;
        let status = StatusCode::from_u16(answer.code).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut problem =
            Problem::new(status, "upstream", answer.detail).with_retry_after(answer.retry_after);
        // The service's own type, title and fields, as it sent them.
        problem.kind = answer.kind;
        problem.title = answer.title;
        problem.errors = answer.errors;
        problem
    }
}

impl From<UserChatError> for Problem {
    fn from(error: UserChatError) -> Self {
        match error {
            UserChatError::Invalid(errors) => Problem::invalid(errors),
            UserChatError::NotFound(detail) => Problem::not_found(detail),
            UserChatError::Forbidden(detail) => Problem::forbidden(detail),
            UserChatError::Service(error) => error.into(),
            UserChatError::Store(error) => Problem::storage(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_problem_goes_back_to_the_client_as_it_was_worded() {
        let problem = Problem::too_many_requests("slow down", 7);
        let error = ServiceError::from(problem.clone());
        assert!(matches!(error, ServiceError::Refused(_)));
        let back = Problem::from(error);
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&problem).unwrap()
        );
        assert_eq!(back.retry_after(), Some(7));
    }

    #[test]
    fn a_problem_type_of_another_scheme_is_kept() {
        let mut problem = Problem::not_found("nothing here");
        problem.kind = "about:blank".into();
        let back = Problem::from(ServiceError::from(problem));
        assert_eq!(back.kind, "about:blank");
        assert_eq!(back.status, 404);
    }

    #[test]
    fn a_failure_of_the_service_is_not_a_refusal() {
        let error = ServiceError::from(Problem::unavailable("down", 2));
        assert!(matches!(error, ServiceError::Failed(_)));
    }
}
